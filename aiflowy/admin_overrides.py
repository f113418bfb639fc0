"""Django admin strings whose zh-hans wording aiflowy's catalogue overrides.

AIFlowy's operators know the add button as 新增 (Django's own translation says 增加). The
overrides live in aiflowy/locale (LOCALE_PATHS wins over Django's catalogues); the strings are
named here so that `makemessages` keeps them instead of marking them obsolete.
"""

from django.utils.translation import gettext_noop

OVERRIDDEN_ADMIN_STRINGS = (gettext_noop("Add %(name)s"), gettext_noop("Add"))
