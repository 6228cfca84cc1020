"""One module per integration kind, and the table that maps a receiver's ``*_configs`` key to the
factory building that integration from its configuration entry and the ``global`` section.

Adding a receiver is one module here plus one line in :data:`INTEGRATIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from alerting.notify.base import IntegrationFactory
from alerting.notify.receivers import (
    alertmanager,
    console,
    discord,
    email,
    incidentio,
    jira,
    mattermost,
    msteams,
    msteamsv2,
    opsgenie,
    pagerduty,
    pushover,
    rocketchat,
    slack,
    sms,
    sns,
    telegram,
    victorops,
    webex,
    webhook,
    wechat,
)

INTEGRATIONS: Mapping[str, IntegrationFactory] = {
    "console_configs": console.console_integration,
    "webhook_configs": webhook.webhook_integration,
    "slack_configs": slack.slack_integration,
    "pagerduty_configs": pagerduty.pagerduty_integration,
    "email_configs": email.email_integration,
    "sms_configs": sms.sms_integration,
    "alertmanager_configs": alertmanager.alertmanager_integration,
    "telegram_configs": telegram.telegram_integration,
    "opsgenie_configs": opsgenie.opsgenie_integration,
    "victorops_configs": victorops.victorops_integration,
    "pushover_configs": pushover.pushover_integration,
    "discord_configs": discord.discord_integration,
    "sns_configs": sns.sns_integration,
    "webex_configs": webex.webex_integration,
    "wechat_configs": wechat.wechat_integration,
    "msteams_configs": msteams.msteams_integration,
    "msteamsv2_configs": msteamsv2.msteamsv2_integration,
    "mattermost_configs": mattermost.mattermost_integration,
    "rocketchat_configs": rocketchat.rocketchat_integration,
    "jira_configs": jira.jira_integration,
    "incidentio_configs": incidentio.incidentio_integration,
}

__all__ = ["INTEGRATIONS"]
