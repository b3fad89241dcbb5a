"""Settings, all read from the environment.

Defaults give a working development setup on a fresh machine (SQLite, DEBUG on).
Production sets DJANGO_DEBUG=0, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and DATABASE_URL;
see README.md ("Production").
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "development-only-insecure-key"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: the docs page needs no CDN
    "django_q",
    "axes",  # login throttling: failed logins, lockouts (visible in the admin)
    "eventlog",
    "annotation",
    "attacks",
    "evaluation",
    "demo",
    "modelserve",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.RefuseUnreadableRequests",  # 400: not UTF-8, a control character in the path, too large
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.htmx_errors.HtmxErrorMessages",  # an HTMX request's error: a message shown in place
    "eventlog.middleware.EventMetadataMiddleware",
    "axes.middleware.AxesMiddleware",  # answers a locked-out login with 429
]

ROOT_URLCONF = "config.urls"
CSRF_FAILURE_VIEW = "config.htmx_errors.csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"

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


def database_from_env() -> dict:
    url = os.environ.get("DATABASE_URL")
    if url:
        database = dj_database_url.parse(url, conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")))
        if database["ENGINE"] == "django.db.backends.postgresql":
            # The hot paths' fixed statements (eventlog/sql.py) are prepared after this many
            # uses on a connection. "none" behind a pooler that cannot keep prepared statements.
            threshold = os.environ.get("DB_PREPARE_THRESHOLD", "5")
            database.setdefault("OPTIONS", {})["prepare_threshold"] = (
                None if threshold.lower() == "none" else int(threshold)
            )
        return database
    path = Path(os.environ.get("SQLITE_PATH", VAR_DIR / "db.sqlite3"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            # IMMEDIATE takes the write lock at BEGIN: no "database is locked" upgrade
            # failures, and appends are serialised from the start of their transaction.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES = {"default": database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Password guessing on /accounts/login/ and /admin/login/ (django-axes): after AXES_FAILURE_LIMIT
# failed logins of one username from one address, that pair is refused (429) for
# AXES_COOLOFF_MINUTES, right password or not. Lockouts are listed in the admin (Axes → Access
# attempts; deleting one unlocks). Sessions and API tokens never pass through here.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out pair before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = True
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous request is answered 401 with WWW-Authenticate.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # Every API view is rate-limited per user (anonymous visitors: per address). A view with
    # its own throttle (the filtered generator) replaces these with its own scope.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_ANON_RATE", "60/min"),
        "user": os.environ.get("API_USER_RATE", "600/min"),
        # The public filtered-generator demo and endpoint: requests per visitor (PMs are not limited).
        "filtered_generation": os.environ.get("FILTERED_GENERATION_RATE", "20/min"),
    },
}

# OpenAPI 3 at /api/v1/schema, Swagger UI at /api/v1/docs (its files from the sidecar app).
SPECTACULAR_SETTINGS = {
    "TITLE": "Adversarial training API",
    "DESCRIPTION": (
        "Labelling tasks for contractors, progress and agreement for vendor and project managers, "
        "classifier inference, training runs and the evaluation report for project managers, and "
        "the event feed. Authenticate with `Authorization: Token <key>` (or a session). "
        "Every error body is JSON with a `detail`; validation errors also name their fields."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1/",
    "COMPONENT_SPLIT_REQUEST": True,
}

# django-q2: the ORM broker needs no extra service. A task not acknowledged within
# `retry` seconds is handed out again, so `timeout` stays below it.
Q_CLUSTER = {
    "name": "advtrain",
    "orm": "default",
    "workers": int(os.environ.get("Q_WORKERS", "2")),
    "timeout": int(os.environ.get("Q_TIMEOUT", "3000")),
    "retry": int(os.environ.get("Q_RETRY", "3600")),
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
}

# modelserve's rewrite tool: an optional masked LM (a local checkpoint folder, any vocabulary)
# adds fill-in-the-blank candidates to those from the classifier's gradient and embedding space;
# an edit is offered only where the sentence-embedding cosine of the edited words and their
# neighbours stays at MODELSERVE_MIN_SIMILARITY or more, by the model in MODELSERVE_SIMILARITY_DIR
# (default: the shipped MiniLM).
MODELSERVE_MLM_DIR = os.environ.get("MODELSERVE_MLM_DIR") or None
MODELSERVE_SIMILARITY_DIR = os.environ.get("MODELSERVE_SIMILARITY_DIR") or None
MODELSERVE_MIN_SIMILARITY = float(os.environ.get("MODELSERVE_MIN_SIMILARITY", "0.80"))
# Load and warm the classifiers of open campaigns when a web process starts (config/wsgi.py).
MODELSERVE_WARM_ON_START = env_bool("MODELSERVE_WARM_ON_START", True)
# On a CPU, score through ONNX Runtime ("onnx": about twice PyTorch's speed for one snippet) or
# PyTorch ("torch"). Saliency and gradients always run in PyTorch.
MODELSERVE_CPU_RUNTIME = os.environ.get("MODELSERVE_CPU_RUNTIME", "onnx")
# In-process inference (README, "Configuration"): the device ("" = a GPU when one is visible, else
# the CPU; "cpu", "cuda", "cuda:N"), snippets a forward pass, scores kept per loaded classifier,
# rescored variants a suggestion request may cost (0: 192 on a CPU, 4096 on a GPU), classifiers
# kept loaded per process, and how often a training job records its progress.
MODELSERVE_DEVICE = os.environ.get("MODELSERVE_DEVICE", "")
MODELSERVE_BATCH_SIZE = int(os.environ.get("MODELSERVE_BATCH_SIZE", "64"))
MODELSERVE_SCORE_CACHE_SIZE = int(os.environ.get("MODELSERVE_SCORE_CACHE_SIZE", "20000"))
MODELSERVE_VARIANT_BUDGET = int(os.environ.get("MODELSERVE_VARIANT_BUDGET", "0"))
MODELSERVE_MODELS_IN_MEMORY = int(os.environ.get("MODELSERVE_MODELS_IN_MEMORY", "2"))
MODELSERVE_HEARTBEAT_SECONDS = float(os.environ.get("MODELSERVE_HEARTBEAT_SECONDS", "10"))
# A remote modelserve instance (e.g. on a GPU host) to send inference to; unset: in-process.
MODELSERVE_URL = os.environ.get("MODELSERVE_URL", "")
MODELSERVE_TOKEN = os.environ.get("MODELSERVE_TOKEN", "")
# Where training runs write their checkpoints (Hugging Face folders) and manifests.
MODELSERVE_CHECKPOINT_ROOT = Path(os.environ.get("MODELSERVE_CHECKPOINT_ROOT", VAR_DIR / "checkpoints"))

# Text generation (paraphrases, story completions): an OpenAI-compatible endpoint, else a local causal LM
# folder, else (on by default only in development) a replay of the completions stored for each prompt.
GENERATOR_REPLAY = env_bool("GENERATOR_REPLAY", DEBUG)
GENERATOR_DIR = os.environ.get("GENERATOR_DIR") or None
GENERATOR_URL = os.environ.get("GENERATOR_URL", "")
GENERATOR_API_KEY = os.environ.get("GENERATOR_API_KEY", "")
GENERATOR_MODEL = os.environ.get("GENERATOR_MODEL", "")

# The event log's guard triggers refuse DELETE/TRUNCATE. Only the test settings allow
# `manage.py flush` to suspend them (Django's TransactionTestCase flushes between tests).
EVENTLOG_ALLOW_FLUSH = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
