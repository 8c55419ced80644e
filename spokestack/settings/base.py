"""Settings shared by every environment. Everything that varies comes from the environment."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the environment variable {name}.")
    return value


def env_bool(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> str | None:
    """A DRF throttle rate such as `120/min` (per s, min, hour or day); empty turns it off."""
    value = env(name, default).strip()
    if value and not re.fullmatch(r"\d+/(s|sec|m|min|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name} must look like 120/min (per s, min, hour or day), or be empty (no limit).")
    return value or None


def database_from_url(url: str) -> dict:
    parts = urlsplit(url)
    pool_size = int(env("DATABASE_POOL_MAX_SIZE", "0"))
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(f"DATABASE_URL must be a postgres:// URL, not {parts.scheme}://")
    return {
        "ENGINE": "spokestack.db_backend",  # django-tenants' backend (spokestack/db_backend/base.py)
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": 0 if pool_size else int(env("DATABASE_CONN_MAX_AGE", "0")),
        # With a pool, the pool checks a connection before handing it out (spokestack/db_backend).
        "CONN_HEALTH_CHECKS": True,
        # Workers run many agent loops on threads and give their connection back before every
        # model call: a per-process pool caps the connections PostgreSQL sees (0 = no pool).
        # Waits are short: while PostgreSQL is down a request answers 503 within seconds and a
        # run is interrupted (to resume from its checkpoint), rather than each hanging a minute.
        # prepare_threshold: Django turns psycopg's prepared statements off (None); the platform's hottest
        # statements ask for it (spokestack.db.execute_prepared), nothing else is ever prepared (a query
        # would have to run 2**31 times first). Transaction pooling is refused at start (DESIGN §17).
        "OPTIONS": {"connect_timeout": int(env("DATABASE_CONNECT_TIMEOUT", "5")), "prepare_threshold": 2**31 - 1,
                    **({"pool": {"min_size": 1, "max_size": pool_size,
                                 "timeout": float(env("DATABASE_POOL_TIMEOUT", "5"))}} if pool_size else {})},
    }


def redis_url(db: int) -> str:
    """REDIS_URL with another database number: broker, cache and channel layer stay apart."""
    if not REDIS_URL:
        raise ImproperlyConfigured("Set REDIS_URL, or a URL of its own for each Redis role (CELERY_BROKER_URL, "
                                   "CACHE_REDIS_URL, CHANNEL_LAYER_REDIS_URL).")
    parts = urlsplit(REDIS_URL)
    return parts._replace(path=f"/{db}").geturl()


SECRET_KEY = env("DJANGO_SECRET_KEY", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ".localhost,localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

DATABASES = {"default": database_from_url(env("DATABASE_URL"))}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REDIS_URL = env("REDIS_URL", "")

# --- Tenancy (DESIGN §3) ---------------------------------------------------------------
SHARED_APPS = [
    "django_tenants",
    "daphne",
    "spokestack.tenancy",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "channels",
    "guardian",
    "axes",
    "spokestack.accounts",
    "versions.catalog",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.admin",
    "guardian",
    "axes",
    "spokestack.accounts",
    "tuning",
    "tuning.knowledge",
    "skills",
    "agents",
    "agents.studio",
    "feedback",
    "versions",
    "usage",
    "spokestack.webhooks",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenancy.Instance"
# django-tenants colours the captions of instance apps green in the admin; ours is one admin per
# instance, where every app is an instance app, so the colour says nothing (issue #15).
TENANT_COLOR_ADMIN_APPS = False
TENANT_DOMAIN_MODEL = "tenancy.Domain"
PUBLIC_SCHEMA_URLCONF = "spokestack.urls_public"
ROOT_URLCONF = "spokestack.urls"
# New instances are cloned from a migrated template schema instead of migrated one by one.
TENANT_BASE_SCHEMA = "instance_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
# migrate_schemas skips schemas whose migrations are all applied (django-tenants#719).
GET_EXECUTOR_FUNCTION = "spokestack.tenancy.migration_executor.get_executor"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False
# Issue `SET search_path` once per connection and schema switch instead of before every query.
# Safe here: django-tenants (4.0.1) forgets the setting on close (so a pooled connection is set
# again), on rollback and savepoint rollback (which revert a SET), and on every set_tenant.
TENANT_LIMIT_SET_CALLS = True

MIDDLEWARE = [
    # Outermost: answers 503 instead of the 500 of a request that met a database or Redis
    # outage anywhere below, the instance lookup included (spokestack/outages.py).
    "spokestack.outages.DependencyOutageMiddleware",
    # The JSON error envelope on every /api/ error, Django's own 404 and 500 included, and U+0000
    # in a path, query string or header refused with 400 (spokestack/api/error_envelope.py).
    "spokestack.api.error_envelope.ApiErrorEnvelopeMiddleware",
    "spokestack.tenancy.middleware.InstanceMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Innermost: turns a sign-in that django-axes locked out into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out sign-in before any password is checked (spokestack/throttles.py).
    # Every authenticate() call must pass the request, or it raises.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
GUARDIAN_RAISE_403 = True
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row per schema

WSGI_APPLICATION = None
ASGI_APPLICATION = "spokestack.asgi.application"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".spokestack" / "static"
STATICFILES_DIRS: list[Path] = []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Redis roles: broker, result backend, cache and channel layer (DESIGN §17) -------------
# By default one Redis (REDIS_URL) in three databases; each role may have a Redis of its own. The
# broker also takes Sentinel URLs ("sentinel://h1:26379;sentinel://h2:26379", with
# CELERY_BROKER_SENTINEL_MASTER); Redis Cluster is not supported by Celery.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "") or redis_url(0)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", "") or None  # results are not kept by default
CACHE_REDIS_URL = env("CACHE_REDIS_URL", "") or redis_url(1)
CHANNEL_LAYER_REDIS_URL = env("CHANNEL_LAYER_REDIS_URL", "") or redis_url(2)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_REDIS_URL,
        # Keys carry the schema, so one instance never reads another's entries.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        # A hung Redis fails a cache call in seconds (503), instead of holding the request.
        # One pool per process: under ASGI each request and stream is a context with its own
        # cache object, and each held a Redis connection of its own (spokestack/cache.py).
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2,
                    "pool_class": "spokestack.cache.SharedConnectionPool"},
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # No read timeout: a subscription waits on its socket for as long as nobody publishes.
        "CONFIG": {"hosts": [{"address": CHANNEL_LAYER_REDIS_URL, "socket_connect_timeout": 2}]},
    }
}
# Live event streams and sockets (SSE, ws/runs/, ws/events/; issue #13): each ends after
# STREAM_MAX_SECONDS with a `reconnect` (resume with Last-Event-ID / ?after=), re-checks its
# viewer's credentials and access every STREAM_RECHECK_SECONDS, and a user holds at most
# STREAM_MAX_PER_USER at once (counted in Redis; a stream's place expires unless it is renewed).
STREAM_MAX_SECONDS = float(env("STREAM_MAX_SECONDS", "1800"))
STREAM_RECHECK_SECONDS = float(env("STREAM_RECHECK_SECONDS", "5"))
STREAM_MAX_PER_USER = int(env("STREAM_MAX_PER_USER", "20"))

CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task looks its instance up by schema once per 30 s per worker process (tenant_schemas_celery),
# not with one query per task.
CELERY_TASK_TENANT_CACHE_SECONDS = 30
# Time limits stay below the visibility timeout, so a task is redelivered only when its
# worker died, never while it still runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(env("CELERY_VISIBILITY_TIMEOUT", "3600"))}
if CELERY_BROKER_URL.startswith("sentinel://"):
    CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = env("CELERY_BROKER_SENTINEL_MASTER", "mymaster")
CELERY_TASK_SOFT_TIME_LIMIT = 1500
CELERY_TASK_TIME_LIMIT = 1800
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Periodic upkeep has a queue of its own, so it never waits behind a backlog of runs; workers
# consume every queue listed here unless started with -Q.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = {"celery": {}, "maintenance": {}}
CELERY_TASK_ROUTES = {"agents.reap_stale_runs": {"queue": "maintenance"}}
REAPER_INTERVAL_S = float(env("REAPER_INTERVAL_S", "5"))
# Prometheus /metrics (spokestack/metrics.py): the bearer token a scraper sends; empty: /metrics answers 404.
METRICS_TOKEN = env("METRICS_TOKEN", "")
# A delegated run starts in its parent's worker slot, on a thread of its own, and the parent goes on
# as soon as it ends (agents/delegation.py); off: each child is a task of its own and the parent waits.
AGENT_DELEGATION_INLINE = env_bool("AGENT_DELEGATION_INLINE", True)
CELERY_BEAT_SCHEDULE = {
    # Expires before the next one is due: copies queued while no worker listened are dropped.
    "reap-stale-runs": {"task": "agents.reap_stale_runs", "schedule": REAPER_INTERVAL_S,
                        "options": {"queue": "maintenance", "expire_seconds": REAPER_INTERVAL_S}},
    "analyze-feedback": {"task": "feedback.analyze_all_instances",
                         "schedule": float(env("FEEDBACK_ANALYSIS_INTERVAL_S", "86400"))},
}
# Each worker process renews the leases of the runs it holds every lease / 5 seconds (its
# heartbeat, agents/watcher.py), so a lease never runs out under a live worker and can be short:
# a dead worker's runs are handed to another by agents.reap_stale_runs within lease + reaper
# interval.
RUN_LEASE_SECONDS = int(env("RUN_LEASE_SECONDS", "10"))

# --- Broker outages (issue #12) -----------------------------------------------------------
# Enqueueing fails fast when Redis is down or hangs, instead of holding the request: connecting
# and every broker command time out in seconds (without a socket timeout a hung Redis held
# `.delay()` for good), and a publish is tried three times over about half a second before
# kombu's OperationalError reaches the caller (spokestack.outages answers it with a 503).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS |= {"socket_connect_timeout": 2, "socket_timeout": 5}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.25,
                                    "interval_max": 0.25}
# A worker that loses the broker keeps its runs in flight going; they acknowledge their messages
# once it has reconnected (spokestack/celery_resilience.py keeps that from crashing the worker).
# True would only try to cancel them: the threads pool cannot, and a run is never failed for an
# outage.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# --- end of broker outages ----------------------------------------------------------------

# --- API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "spokestack.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "spokestack.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "spokestack.api.errors.exception_handler",
    # The bearer scheme and every error an operation can answer, in the envelope (spokestack/api/schema.py).
    "DEFAULT_SCHEMA_CLASS": "spokestack.api.schema.ApiAutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON that cannot be stored (U+0000) or is nested too deeply is a 400 (spokestack/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["spokestack.api.parsers.HygienicJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Abuse limits (spokestack/throttles.py), counted per instance; an empty variable turns one off.
    # `auth_failures` is asked by BearerTokenAuthentication itself (it runs before any throttle).
    "DEFAULT_THROTTLE_CLASSES": ["spokestack.throttles.ExecutePerUserThrottle",
                                 "spokestack.throttles.ExecutePerAddressThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "auth_failures": env_rate("API_AUTH_FAILURE_RATE", "30/min"),
        "execute_user": env_rate("API_EXECUTE_RATE_PER_USER", "120/min"),
        "execute_address": env_rate("API_EXECUTE_RATE_PER_ADDRESS", "300/min"),
    },
    # Proxies in front of the web processes that append to X-Forwarded-For (0: the peer address
    # is the client's). Also the sign-in lockout's address (spokestack.throttles.client_address).
    "NUM_PROXIES": int(env("TRUSTED_PROXY_COUNT", "0")),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SpokeStack API",
    "DESCRIPTION": "Execute and follow agents, tune them, and manage versions, per agency instance. "
    "Every path is served on the instance's own host.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set that several serializers share (drf-spectacular would suffix a hash).
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "agents.models.RunStatus",
        "UpdateStatusEnum": "versions.models.UpdateNotification.Status",
        "RuleKindEnum": "tuning.models.RuleKind",
        "RuleSourceEnum": "tuning.models.RuleSource",
        "VerticalEnum": "tuning.models.Vertical",
        "VerdictEnum": "feedback.models.Verdict",
        "DocumentKindEnum": "tuning.knowledge.models.DocumentKind",
        "DocumentStatusEnum": "tuning.knowledge.models.DocumentStatus",
        "WebhookDeliveryStatusEnum": "spokestack.webhooks.models.DeliveryStatus",
        "ApprovalPriorityEnum": ["low", "normal", "high", "urgent"],  # a skill's, a rule's, a request's
        "EvalRunStatusEnum": ["queued", "running", "succeeded", "failed"],  # an eval run's
        "EvalResultStatusEnum": ["pending", "passed", "failed"],  # one case's result
        "RoleEnum": ["instance_admin", "instance_manager", "account_manager", "client_contact"],  # a person's role
        "AssignableRoleEnum": ["account_manager", "client_contact"],  # the roles a client assignment gives
    },
}

# --- Sign-in lockout (issue #13; spokestack/throttles.py) ----------------------------------
# django-axes on both admin sites, its failures stored in the schema of the instance whose
# login page was used (axes is in SHARED_APPS and TENANT_APPS): LOGIN_FAILURE_LIMIT failures for
# one login name, or from one address, lock sign-in for it until LOGIN_COOLOFF_SECONDS after the
# last counted failure. LOGIN_LOCKOUT_BY lists what is counted separately; `a+b` counts a pair
# (`username+ip_address`: only a name from one address, gentler on a shared office address).
# The database handler, not the cache: failures live beside the users they guard (isolated like
# auth itself, not by key prefix), sign-in keeps needing only PostgreSQL (no 503 and no lapse of
# the lockout while Redis is down), and operators can list and reset them per instance.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = int(env("LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(seconds=int(env("LOGIN_COOLOFF_SECONDS", "900")))
_LOCKOUT_BY = [[name.strip() for name in item.split("+")]
               for item in env_list("LOGIN_LOCKOUT_BY", "username,ip_address")]
AXES_LOCKOUT_PARAMETERS = [names if len(names) > 1 else names[0] for names in _LOCKOUT_BY]
if (AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME < timedelta(seconds=1) or not _LOCKOUT_BY
        or not {name for names in _LOCKOUT_BY for name in names} <= {"username", "ip_address", "user_agent"}):
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_SECONDS must be at least 1, and LOGIN_LOCKOUT_BY "
                               "a comma-separated list of username, ip_address, user_agent or pairs such as a+b.")
# Attempts refused during a lockout are not recorded: the lockout ends on time, and a flood of
# attempts writes nothing. A success does not clear failures either: anyone with an account
# could otherwise clear the count of the address they guess from.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "spokestack.throttles.client_address"
AXES_LOCKOUT_CALLABLE = "spokestack.throttles.login_lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # no row per successful sign-in
AXES_ENABLE_ADMIN = False  # its pages would go to Django's default admin site, which is not served

# --- Tuning -----------------------------------------------------------------------------
# Dotted path of a platform catalog used when no app registered one (tuning.assembly).
TUNING_PLATFORM_CATALOG = env("TUNING_PLATFORM_CATALOG", "")

# --- Model ------------------------------------------------------------------------------
ANTHROPIC_API_KEY = os.environ.get("ANTHROPIC_API_KEY", "")
ANTHROPIC_MAX_RETRIES = int(env("ANTHROPIC_MAX_RETRIES", "2"))  # the SDK's own retries, per model
ANTHROPIC_TIMEOUT_S = float(env("ANTHROPIC_TIMEOUT_S", "120"))
# A thread turn's conversation (its messages, estimated at 4 characters a token) at most this big
# when the turn starts; over it, earlier turns are compacted (agents/compaction.py). Of a 200k-token
# context this leaves ~100k for the system prompt and tools (the cached prefix, usually under 20k),
# the turn's own tool calls and results (each result at most 20,000 characters) and max_tokens
# (at most 8,192 for the core agents).
THREAD_CONTEXT_BUDGET_TOKENS = int(env("THREAD_CONTEXT_BUDGET_TOKENS", "100000"))

# --- Outbound HTTP and secrets at rest (DESIGN §7) ----------------------------------------
# Loopback is refused like any non-public address. Development may let the sample ERP
# through: both the flag and the port list are needed, and production refuses the flag.
EGRESS_ALLOW_LOOPBACK = env_bool("EGRESS_ALLOW_LOOPBACK", False)
EGRESS_LOOPBACK_PORTS = [int(port) for port in env_list("EGRESS_LOOPBACK_PORTS", "")]
EGRESS_CONNECT_TIMEOUT = float(env("EGRESS_CONNECT_TIMEOUT", "5"))
EGRESS_READ_TIMEOUT = float(env("EGRESS_READ_TIMEOUT", "15"))
# How long a tool waits for the instance's ERP; a keyed write whose answer is lost is sent again
# with the same key within 3× this (spokestack/erp.py).
ERP_TIMEOUT_S = float(env("ERP_TIMEOUT_S", "10"))
# Keys for credentials at rest, comma-separated, the first one current (spokestack.secrets).
# Empty outside production: a key derived from SECRET_KEY is used instead.
SPOKESTACK_SECRET_KEYS = env_list("SPOKESTACK_SECRET_KEYS", "")

EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", "SpokeStack <noreply@spokestack.localhost>")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"outages": {"()": "spokestack.outages.OutageLogFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"filters": ["outages"]},
        "django.db.backends": {"level": "WARNING"},
        # httpx2 logs every request's full URL at INFO, query string included: tokens in
        # webhook URLs must not reach the logs. spokestack.egress logs the origin only.
        "httpx2": {"level": "WARNING"},
        "httpcore2": {"level": "WARNING"},
    },
}

# --- skills and approvals ---------------------------------------------------------------
# Where skills.services reads core tool names from (skills never import agents).
# How long a tool call waits for approval is the instance's own (Instance.approval_sla_hours).
CELERY_BEAT_SCHEDULE["expire-approvals"] = {"task": "agents.expire_approvals", "schedule": 300.0}

# --- event webhooks (issue #21) ------------------------------------------------------------
# Seconds between attempts after each failure: the Standard Webhooks schedule (5 s, 5 min, 30 min,
# 2 h, 5 h, 10 h, 10 h; each ±10 %), so 8 attempts over about 27.5 hours.
WEBHOOK_RETRY_SCHEDULE = [float(s) for s in env_list("WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000")]
WEBHOOK_TIMEOUT_S = float(env("WEBHOOK_TIMEOUT_S", "10"))
WEBHOOK_DISABLE_AFTER_S = float(env("WEBHOOK_DISABLE_AFTER_S", "86400"))  # failing with no success for a day
WEBHOOK_COUNTDOWN_MAX_S = float(env("WEBHOOK_COUNTDOWN_MAX_S", "300"))
WEBHOOK_ROTATION_OVERLAP_S = float(env("WEBHOOK_ROTATION_OVERLAP_S", "86400"))  # old + new signature after a rotation  # longer waits: the sweep sends them
CELERY_BEAT_SCHEDULE["webhook-sweep"] = {"task": "webhooks.sweep",
                                         "schedule": float(env("WEBHOOK_SWEEP_INTERVAL_S", "30")),
                                         "options": {"queue": "maintenance"}}

# --- versions ---------------------------------------------------------------------------
# Sandbox sessions last 24 hours; this ends the ones past it (the services refuse them already).
CELERY_BEAT_SCHEDULE["expire-sandboxes"] = {"task": "versions.expire_sandboxes",
                                            "schedule": float(env("SANDBOX_EXPIRY_INTERVAL_S", "600"))}

# Evals: a case whose run has not ended within this time fails saying so (an approval nobody gives);
# an unfinished eval run whose task was lost is queued again by the sweep once its last pass is this old.
EVAL_CASE_TIMEOUT_S = int(env("EVAL_CASE_TIMEOUT_S", "900"))
EVAL_SWEEP_STALE_S = int(env("EVAL_SWEEP_STALE_S", "30"))
CELERY_BEAT_SCHEDULE["eval-runs-sweep"] = {"task": "versions.eval_runs_sweep",
                                           "schedule": float(env("EVAL_SWEEP_INTERVAL_S", "60")),
                                           "options": {"queue": "maintenance"}}

# --- memory (tier 3) ------------------------------------------------------------------------
# Memories past their expiry are left out of prompts at once; this marks them expired (audited).
CELERY_BEAT_SCHEDULE["expire-memories"] = {"task": "tuning.expire_memories",
                                           "schedule": float(env("MEMORY_EXPIRY_INTERVAL_S", "300"))}

# --- knowledge (DESIGN §12) -------------------------------------------------------------
# Documents are stored through STORAGES["default"]: files under MEDIA_ROOT by default (never
# served by URL; the admin and the API stream them after asking the policy). For S3-compatible
# storage set STORAGES["default"] to django-storages' S3 backend (see the README, "Knowledge").
MEDIA_ROOT = env("DJANGO_MEDIA_ROOT", str(BASE_DIR / ".spokestack" / "media"))
KNOWLEDGE_MAX_UPLOAD_BYTES = int(env("KNOWLEDGE_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024)))
KNOWLEDGE_MAX_PAGES = int(env("KNOWLEDGE_MAX_PAGES", "500"))
KNOWLEDGE_CHUNK_CHARS = int(env("KNOWLEDGE_CHUNK_CHARS", "1200"))
# A pinned document excerpt is told to every run for its client (tier 3) within this many characters;
# all pins of one prompt together within four times as many (tuning.knowledge.pins).
KNOWLEDGE_PIN_MAX_CHARS = int(env("KNOWLEDGE_PIN_MAX_CHARS", "2000"))
# A document still processing this long after its last progress lost its worker (or its message):
# it is queued again when the documents are read, and by this beat task.
KNOWLEDGE_STALE_AFTER_S = float(env("KNOWLEDGE_STALE_AFTER_S", "300"))
CELERY_BEAT_SCHEDULE["recover-knowledge-ingestions"] = {
    "task": "knowledge.recover_ingestions", "schedule": float(env("KNOWLEDGE_RECOVERY_INTERVAL_S", "120"))}
# Semantic ranking (tuning.knowledge.embeddings): off without a key. With one, chunks are embedded
# after ingestion (that beat task embeds what is missing) and searches fuse pgvector's nearest
# chunks with the full-text ranking. Provider "voyage" (default) or "openai" (and servers that speak
# its API; KNOWLEDGE_EMBEDDINGS_URL points at one). Vectors have 1,024 dimensions.
KNOWLEDGE_EMBEDDINGS_API_KEY = env("KNOWLEDGE_EMBEDDINGS_API_KEY", env("VOYAGE_API_KEY", ""))
KNOWLEDGE_EMBEDDINGS_PROVIDER = env("KNOWLEDGE_EMBEDDINGS_PROVIDER", "voyage")
if KNOWLEDGE_EMBEDDINGS_PROVIDER not in ("voyage", "openai"):
    raise ImproperlyConfigured("KNOWLEDGE_EMBEDDINGS_PROVIDER is 'voyage' or 'openai'")
KNOWLEDGE_EMBEDDINGS_URL = env("KNOWLEDGE_EMBEDDINGS_URL", "")
KNOWLEDGE_EMBEDDINGS_MODEL = env("KNOWLEDGE_EMBEDDINGS_MODEL", "")
# A search waits this long for its query's vector, then ranks by full text alone.
KNOWLEDGE_EMBEDDINGS_QUERY_TIMEOUT_S = float(env("KNOWLEDGE_EMBEDDINGS_QUERY_TIMEOUT_S", "3"))
