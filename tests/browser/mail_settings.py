"""The test settings with e-mail written to files, for a daphne process whose mail a browser test
must read (the locmem outbox lives in the process that sends)."""

import os

from spokestack.settings.test import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ["SPOKESTACK_TEST_MAIL_DIR"]
