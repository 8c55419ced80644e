"""Debian's PgBouncer in front of the test PostgreSQL, for the pooling tests (issue 23 part 3):
`PgBouncer(mode).start()` listens on a free loopback port and routes every database name to the
test cluster. Run as the unprivileged user PostgreSQL runs as when we are root (it refuses root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from spokestack.launcher import _unprivileged_user

from .processes import free_port, stop_process


def binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if found is None:
        raise RuntimeError("pgbouncer is not installed: `make test` installs Debian's pgbouncer when run as root "
                           "with apt (make pgbouncer)")
    return found


class PgBouncer:
    def __init__(self, mode: str, *, host: str, port: int, user: str) -> None:
        self.mode, self.host, self.target_port, self.user = mode, host, int(port), user
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.home = Path(tempfile.mkdtemp(prefix=f"pgbouncer-{mode}-"))

    def start(self) -> PgBouncer:
        self.port = free_port()
        (self.home / "userlist.txt").write_text(f'"{self.user}" ""\n')
        (self.home / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self.host} port={self.target_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.home / 'userlist.txt'}\n"
            f"pool_mode = {self.mode}\nmax_client_conn = 1000\ndefault_pool_size = 200\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.home / 'pgbouncer.log'}\npidfile = {self.home / 'pgbouncer.pid'}\n")
        command = [binary(), str(self.home / "pgbouncer.ini")]
        account = _unprivileged_user()
        if account is not None:  # root: pgbouncer refuses to run as root; -u switches user
            os.chown(self.home, account.pw_uid, account.pw_gid)
            for item in self.home.iterdir():
                os.chown(item, account.pw_uid, account.pw_gid)
            command[1:1] = ["-u", account.pw_name]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, dbname="postgres", user=self.user,
                                     connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.home / "pgbouncer.log")
                    raise RuntimeError(f"pgbouncer did not start: {log.read_text() if log.exists() else ''}") \
                        from None
                time.sleep(0.1)

    def url(self, dbname: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.home, ignore_errors=True)
