"""What a console handler works with: the shared state and, per request, a :class:`Console`.

A route module declares a parameter ``c: Staff`` (signed in; otherwise the browser
is sent to the login page) or ``c: Visitor`` (anyone: the login page), and a form
parameter ``form: Fields``. Then::

    @router.post("/campaigns/{name}/pause")
    def pause(name: str, c: Staff, form: Fields) -> Response:
        c.check_csrf(form, "campaigns.pause")     # 403 unless our form, this session
        c.check("campaigns.pause")                # 403 unless the role may
        with c.acting():                          # audit rows name staff:<id>
            campaigns.pause(c.rt, name)
        return c.redirect(f"/campaigns/{name}", notice="campaigns.notice.paused")

Handlers are plain (sync) functions: FastAPI runs them in its thread pool, so
the use-cases' blocking database calls never stall the event loop, and the actor
set by :meth:`Console.acting` stays in the thread that writes the audit rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query
from fastapi import Path as FastApiPath
from markupsafe import Markup, escape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from engine.app import permissions
from engine.app import staff as staff_uc
from engine.audit import acting_as
from engine.config import Settings
from engine.errors import AuthenticationFailed
from engine.runtime import Runtime
from engine.staff import Principal
from engine.web.console import i18n
from engine.web.console.csrf import ConsoleCsrf
from engine.web.console.i18n import Catalogs
from engine.web.console.pages import Pages
from engine.web.deps import read_form
from engine.web.state import WebState

if TYPE_CHECKING:
    from engine.web.console.auth import DeviceCookies, LoginLimiter

SESSION_COOKIE = "tact_session"
LANG_COOKIE = "tact_lang"
LOGIN_COOKIE = "tact_login"
#: The signed device cookie that lets its account's owner through the account lock.
DEVICE_COOKIE = "tact_device"
#: Where the console's cookies live; the app is mounted there.
COOKIE_PATH = "/admin"


def forget_cookie(response: Response, name: str, settings: Settings) -> None:
    """Expire one of the console's cookies with the attributes it was set with (a browser
    matches a deletion to the cookie by name, path and these)."""
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        secure=settings.console_secure_cookie,
        httponly=True,
        samesite="strict",
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NavItem:
    key: str
    path: str
    operation: str


#: The navigation of every page, in order: (catalog key under ``nav.``, path, operation).
NAV: tuple[NavItem, ...] = (
    NavItem("dashboard", "/", "dashboard.show"),
    NavItem("campaigns", "/campaigns", "campaigns.list"),
    NavItem("contacts", "/contacts", "contacts.lookup"),
    NavItem("segments", "/segments", "segments.list"),
    NavItem("imports", "/imports", "imports.show"),
    NavItem("templates", "/templates", "templates.list"),
    NavItem("staff", "/staff", "staff.list"),
    NavItem("tokens", "/tokens", "tokens.manage"),
    NavItem("audit", "/audit", "audit.list"),
)


@dataclass
class ConsoleState:
    """Built once per console app (``console.state.console``)."""

    web: WebState
    pages: Pages
    catalogs: Catalogs
    csrf: ConsoleCsrf
    limiter: LoginLimiter
    #: Signs and reads ``tact_device`` cookies.
    device_cookies: DeviceCookies
    #: The wrong logins of each trusted device (in memory, this process).
    devices: staff_uc.Devices
    #: The time the console runs on (sessions' idle and absolute timeouts); tests set it.
    clock: Callable[[], datetime] = field(default=utc_now)

    @property
    def runtime(self) -> Runtime:
        return self.web.runtime


def console_state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


class Console:
    """One request to the console: who asks, in which language, and how to answer."""

    def __init__(
        self,
        request: Request,
        state: ConsoleState,
        principal: Principal | None = None,
        token: str | None = None,
    ) -> None:
        self.request = request
        self.state = state
        self.principal = principal
        #: The session token from the cookie (None before login); never shown or logged.
        self.token = token
        explicit = request.query_params.get("lang")
        self.lang = i18n.choose(
            explicit, request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
        )
        #: Set when ``?lang=`` chose a language: every response then remembers it.
        self._remember = i18n.known(explicit) if explicit else None

    # -- what handlers use --------------------------------------------------------------------

    @property
    def rt(self) -> Runtime:
        return self.state.runtime

    @property
    def settings(self) -> Settings:
        return self.state.runtime.settings

    @property
    def staff(self) -> Principal:
        """The signed-in principal (only on ``Staff`` routes)."""
        if self.principal is None:
            raise AuthenticationFailed("not signed in")
        return self.principal

    @property
    def app_language(self) -> str:
        """The language as engine.app.languages names it (``en``, ``zh_CN``)."""
        return i18n.APP_LANGUAGE[self.lang]

    def now(self) -> datetime:
        return self.state.clock()

    def t(self, key: str, **fields: object) -> str:
        return self.state.catalogs.text(self.lang, key, **fields)

    def label(self, key: str, fallback: str) -> str:
        """``t(key)`` when the catalogs have it, else ``fallback`` (a reason or status code
        the catalogs do not name yet is shown as the code, never as an error)."""
        return self.t(key) if self.state.catalogs.has(key) else fallback

    def url(self, path: str, **query: object) -> str:
        """The absolute path of a console route: ``url("/campaigns")`` -> ``/admin/campaigns``."""
        root = self.request.scope.get("root_path", "") or ""
        pairs = {k: str(v) for k, v in query.items() if v is not None}
        return f"{root}{path}" + (f"?{urlencode(pairs)}" if pairs else "")

    def static(self, path: str) -> str:
        return self.url(f"/static/{path}")

    def may(self, operation: str) -> bool:
        return self.principal is not None and permissions.may(self.principal, operation)

    def check(self, operation: str) -> None:
        """PermissionDenied (a 403 page) unless the principal may run ``operation``."""
        permissions.check(self.staff, operation)

    @contextmanager
    def acting(self) -> Iterator[None]:
        """Audit rows written inside the block name this member of staff."""
        with acting_as(self.staff.actor):
            yield

    # -- forms --------------------------------------------------------------------------------

    def csrf(self, purpose: str) -> str:
        if self.token is None:
            raise AuthenticationFailed("not signed in")
        return self.state.csrf.field(purpose, self.token)

    def csrf_field(self, purpose: str) -> Markup:
        """The hidden ``csrf`` input of a form of ``purpose`` (templates: ``csrf_field(...)``)."""
        value = escape(self.csrf(purpose))
        return Markup(f'<input type="hidden" name="csrf" value="{value}">')  # noqa: S704

    def check_csrf(self, form: FormData, purpose: str) -> None:
        """CsrfRejected (a 403 page) unless ``form`` is ours, for this session and purpose."""
        self.state.csrf.check(self.request, form.get("csrf"), purpose, self.token)

    # -- answers ------------------------------------------------------------------------------

    def context(self) -> dict[str, Any]:
        """What every page template gets besides its own variables."""
        path = self.request.url.path
        root = self.request.scope.get("root_path", "") or ""
        local = path[len(root) :] if root and path.startswith(root) else path
        nav = [
            {
                "label": self.t(f"nav.{item.key}"),
                "href": self.url(item.path),
                "current": local == item.path
                or (item.path != "/" and local.startswith(item.path + "/"))
                or local == item.path.rstrip("/"),
            }
            for item in NAV
            if self.may(item.operation)
        ]
        here = self.request.method == "GET"
        languages = [
            {
                "code": code,
                "name": i18n.NATIVE_NAMES[code],
                "href": self._switch_href(code) if here else None,
                "current": code == self.lang,
            }
            for code in i18n.LANGUAGES
        ]
        notice_key = self.request.query_params.get("notice")
        notice = None
        if notice_key and self._is_notice(notice_key):
            notice = self.t(notice_key)
        return {
            "t": self.t,
            "label": self.label,
            "lang": self.lang,
            "html_lang": self.lang,
            "url": self.url,
            "static": self.static,
            "principal": self.principal,
            "may": self.may,
            "csrf_field": self.csrf_field if self.token else None,
            "nav": nav,
            "languages": languages,
            "notice": notice,
        }

    def _switch_href(self, code: str) -> str:
        query = dict(self.request.query_params)
        query.pop("notice", None)
        query["lang"] = code
        root = self.request.scope.get("root_path", "") or ""
        path = self.request.url.path
        local = path[len(root) :] if root and path.startswith(root) else path
        return self.url(local, **query)

    def _is_notice(self, key: str) -> bool:
        return (key.startswith("notice.") or ".notice." in key) and self.state.catalogs.has(key)

    def remember_language(self, response: Response) -> Response:
        if self._remember:
            response.set_cookie(
                LANG_COOKIE,
                self._remember,
                path=COOKIE_PATH,
                httponly=True,
                samesite="strict",
                secure=self.settings.console_secure_cookie,
            )
        return response

    def render(self, name: str, **context: Any) -> str:
        return self.state.pages.render(name, **{**self.context(), **context})

    def page(self, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        """The template ``name`` rendered in the layout, with the common context."""
        response = HTMLResponse(self.render(name, **context), status_code=status)
        self.remember_language(response)
        return response

    def redirect(self, path: str, *, notice: str | None = None, **query: object) -> Response:
        """303 to a console path (after a POST), with an optional notice key for the next page."""
        response = RedirectResponse(self.url(path, notice=notice, **query), status_code=303)
        self.remember_language(response)
        return response


# -- dependencies -----------------------------------------------------------------------------


def anonymous(request: Request) -> Console:
    """A console request that needs no session (the login page, error pages)."""
    return Console(request, console_state(request))


def signed_in(request: Request) -> Console:
    """The signed-in request, or AuthenticationFailed (answered: back to the login page).

    The session is checked on every request (idle and absolute timeouts, logout,
    a disabled account end it at once).
    """
    state = console_state(request)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise AuthenticationFailed("not signed in")
    principal = staff_uc.session(state.runtime, token, now=state.clock())
    return Console(request, state, principal, token)


async def form_fields(request: Request) -> FormData:
    """The submitted form (no file uploads; a module taking uploads reads its own)."""
    return await read_form(request)


#: A handler parameter typed ``Staff`` is the signed-in request.
Staff = Annotated[Console, Depends(signed_in)]
#: A handler parameter typed ``Visitor`` is a request without a session.
Visitor = Annotated[Console, Depends(anonymous)]
#: A handler parameter typed ``Fields`` is the submitted form.
Fields = Annotated[FormData, Depends(form_fields)]


#: An id in a console path: a row id of either database (a larger number is a 400, never
#: an overflow in the driver). PostgreSQL's integer ids stop at 2**31 - 1.
RowId = Annotated[int, FastApiPath(ge=1, le=2**31 - 1)]
#: A cursor in a console query string, bounded the same way.
RowCursor = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
