"""Plan and feature switch checks, with CommCare HQ's exact texts and statuses."""

from core.errors import PlanNotEntitledError, RegistrationDisabledError
from core.models import PLANS, Domain

MINIMUM_PLAN = "pro"
PLAN_NOT_ENTITLED = "Your current plan does not have access to this feature"
REGISTRATION_DISABLED = (
    "Please first enable SMS mobile worker registration for your project."
)


def check_entitlements(domain: Domain) -> None:
    """Raise unless the plan is Pro or higher and SMS registration is enabled."""
    if domain.plan not in PLANS or PLANS.index(domain.plan) < PLANS.index(MINIMUM_PLAN):
        raise PlanNotEntitledError(PLAN_NOT_ENTITLED)
    if not domain.sms_registration_enabled:
        raise RegistrationDisabledError(REGISTRATION_DISABLED)
