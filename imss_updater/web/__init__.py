"""The web console: ``create_app(WebConfig)`` for waitress, ``set_admin_password`` for the CLI."""

from imss_updater.web.app import create_app
from imss_updater.web.auth import set_admin_password
from imss_updater.web.context import WebConfig
from imss_updater.web.metrics import RunMetrics

__all__ = ["RunMetrics", "WebConfig", "create_app", "set_admin_password"]
