"""Patient pages in the patient's language (issue 14): Flask-Babel with the catalogs in translations/.

The locale is the signed-in patient's stored `patient.language` on the patient and check-in pages
(and the error pages they lead to); staff pages stay in English. It is never guessed from the
browser: a shared or borrowed phone must not change what the patient reads.

Strings that are data in the domain (the questionnaire's questions and answers, the §3 messages,
the form errors) are translated here, at render time: the catalog holds them as msgids
(`recovery/web/i18n_extract.py` lists them for `pybabel extract`), so one catalog, one
completeness test and one translator's file cover every word a patient reads.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale, get_translations, refresh

from recovery.config import REPO_ROOT
from recovery.domain.languages import DEFAULT, ENGLISH_NAMES as LANGUAGE_NAMES_EN, OWN_NAMES as LANGUAGES  # noqa: F401

PATIENT_BLUEPRINTS = frozenset({"patient", "checkin"})
TRANSLATIONS_DIR = REPO_ROOT / "translations"

babel = Babel()


def patient_language() -> str:
    """The signed-in patient's language, or English (nobody signed in, or a language we lack)."""
    from recovery.store.db import db
    from recovery.store.models import Patient
    ws = g.get("patient_session")
    patient = db.session.get(Patient, ws.patient_id) if ws is not None and ws.patient_id else None
    language = patient.language if patient is not None else DEFAULT
    return language if language in LANGUAGES else DEFAULT


def select_locale() -> str:
    if not has_request_context():  # a CLI command or the scheduler: the caller names the language
        return DEFAULT
    if g.get("patient_language"):  # the link page: the link's patient, not yet signed in
        return g.patient_language
    if request.blueprint in PATIENT_BLUEPRINTS or request.blueprint is None:
        return patient_language()  # None: an error page or a static file, reached from a patient page
    return DEFAULT


def page_language() -> str:
    return str(get_locale() or DEFAULT)


def known_language(code: str | None) -> str | None:
    """A language code we have catalogs for, or None (anything else a URL or form carries)."""
    return code if code in LANGUAGES else None


def new_link_url() -> str:
    """"Text me a new link", in the language of the page it is on: a link's patient who reads
    Spanish keeps reading Spanish on the next page, where nobody is signed in yet."""
    from flask import url_for
    language = page_language()
    return url_for("patient.new_link", lang=language) if language != DEFAULT else url_for("patient.new_link")


def translations():
    """The request's catalog, as flask_babel.get_translations() gives it, kept beside the locale
    it was chosen for: a page asks for it dozens of times (every `_()` in the templates, every
    question), and Flask-Babel looks up its context, domain and locale on every call (issue 17).
    A new locale (the next request, or flask_babel.refresh()) is a new Locale object: looked up
    again."""
    if not g:  # no application context: Flask-Babel answers (NullTranslations)
        return get_translations()
    ns = g.get("_flask_babel")  # where Flask-Babel 4 keeps the request's locale (babel_locale)
    locale = getattr(ns, "babel_locale", None)
    if locale is None:
        get_locale()  # choose it (the patient's language), as Flask-Babel would on first use
        ns = g.get("_flask_babel")
        locale = getattr(ns, "babel_locale", None)
        if locale is None:  # no context to keep it in
            return get_translations()
    hit = getattr(ns, "rt_translations", None)
    if hit is not None and hit[0] is locale:
        return hit[1]
    found = get_translations()
    ns.rt_translations = (locale, found)
    return found


def text(msgid: str | None, **params) -> str:
    """A domain string in the page's language; `{name}` placeholders filled after translating."""
    if not msgid:
        return msgid or ""
    translated = translations().ugettext(msgid)  # what flask_babel.gettext(msgid) returns
    return translated.format(**params) if params else translated


def item(i):
    """A questionnaire Item with its patient-facing words translated (value codes unchanged)."""
    if i is None:
        return None
    return replace(i, question=text(i.question), ask=text(i.ask) if i.ask else None,
                   ask_first=text(i.ask_first) if i.ask_first else None, hint=text(i.hint) if i.hint else None,
                   options=tuple(replace(o, label=text(o.label)) for o in i.options))


def group(grp):
    return _group_in(page_language(), grp)


@lru_cache(maxsize=512)
def _group_in(language: str, grp):
    """A screen's words in one language: the same for every patient and request (the catalogs are
    compiled before the app starts), so translated once per screen and language (issue 17)."""
    return replace(grp, title=text(grp.title), intro=text(grp.intro) if grp.intro else None,
                   items=tuple(item(i) for i in grp.items))


def field_error(err) -> str:
    """A questionnaire FieldError in the page's language (its msgid and params, when it has them)."""
    msgid = getattr(err, "msgid", None)
    if msgid is None:
        return err
    return text(msgid, **{k: text(v) if isinstance(v, str) and k.startswith("label") else v
                          for k, v in err.params.items()})


def outcome_message(checkin, clinic) -> str:
    """The §3 message after a check-in (recovery/domain/triage.py), in the page's language."""
    from recovery.domain.triage import PATIENT_MESSAGES, Level
    level = Level[checkin.level] if checkin.level else Level.OK
    return text(PATIENT_MESSAGES[level], emerg=clinic.emergency_number, phone=clinic.care_phone)


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    babel.init_app(app, locale_selector=select_locale)

    @app.before_request
    def _fresh_locale() -> None:
        # Flask-Babel caches the locale in `g`, which outlives a request when an app context does
        # (tests, CLI): each request asks the patient's stored language again.
        refresh()
    # The templates' _() and ngettext(), as Flask-Babel installs them, through translations()
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: translations().ugettext(s),
        ngettext=lambda s, p, n: translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: translations().unpgettext(c, s, p, n),
    )
    app.jinja_env.globals.update(page_language=page_language, new_link_url=new_link_url, LANGUAGES=LANGUAGES,
                                 LANGUAGE_NAMES_EN=LANGUAGE_NAMES_EN)
