"""Who may see and do what. Every page, API endpoint and admin view asks these."""

from functools import wraps

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from annotation.models import Member, Role


def role_of(user) -> str | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.PROJECT_MANAGER
    if not hasattr(user, "_annotation_role"):  # once per user object, i.e. per request
        user._annotation_role = Member.objects.filter(user=user).values_list("role", flat=True).first()
    return user._annotation_role


def vendor_of(user):
    member = Member.objects.filter(user=user).select_related("vendor").first()
    return member.vendor if member else None


def is_pm(user) -> bool:
    return role_of(user) == Role.PROJECT_MANAGER


def can_label(user) -> bool:
    return role_of(user) == Role.CONTRACTOR


def can_oversee(user) -> bool:
    """Vendor managers (their vendor) and project managers (everyone) see progress."""
    return role_of(user) in (Role.VENDOR_MANAGER, Role.PROJECT_MANAGER)


def visible_users(viewer) -> QuerySet:
    """The people whose work `viewer` may see: themselves, their vendor's, or everyone."""
    users = get_user_model().objects.all()
    role = role_of(viewer)
    if role == Role.PROJECT_MANAGER:
        return users
    if role == Role.VENDOR_MANAGER:
        return users.filter(member__vendor=vendor_of(viewer))
    if role == Role.CONTRACTOR:
        return users.filter(pk=viewer.pk)
    return users.none()


def role_required(allowed, refusal: str):
    """A page view for logged-in users that `allowed(user)` accepts (403 with `refusal` else)."""

    def decorate(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not allowed(request.user):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
