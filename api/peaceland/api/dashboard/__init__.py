"""Each force's live alert dashboard: one page, served by the control plane at /dashboard/.

The page is built from ``api/dashboard`` (TypeScript, MapLibre GL, npm packages pinned by
its package-lock.json) into ``static/`` by ``make install``: every asset is served from
here, none from a CDN, since a force's network may be closed. The page signs in with the
API's own routes and reads the force's live feed; it holds no data the API does not give an
officer or analyst of the force.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

HERE: Final = Path(__file__).parent
STATIC: Final = HERE / "static"
#: The file the build writes last is the bundle: its presence says the page was built.
BUNDLE: Final = STATIC / "app.js"


def headers(style_url: str | None) -> dict[str, str]:
    """What every answer under /dashboard carries: the page runs only its own scripts,
    talks only to this origin (and the basemap's tile servers, when one is set), and is
    never framed by another page (the token in its tab could be clicked through)."""
    connect = "'self' https:" if style_url else "'self'"
    policy = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "worker-src 'self' blob:",
            "img-src 'self' data: blob:" + (" https:" if style_url else ""),
            f"connect-src {connect}",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "object-src 'none'",
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def mount(app: FastAPI, style_url: str | None) -> None:
    """The page, its assets and its settings, under /dashboard (public: the page signs in)."""
    extra = headers(style_url)

    @app.middleware("http")
    async def dashboard_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/dashboard"):
            response.headers.update(extra)
            if request.url.path.startswith("/dashboard/static/"):
                # Not hashed by name: checked again on each load (304 when unchanged).
                response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/dashboard", include_in_schema=False)
    def dashboard_root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get("/dashboard/", include_in_schema=False, response_model=None)
    def dashboard_page() -> FileResponse | JSONResponse:
        if not BUNDLE.exists():
            return JSONResponse(
                {"detail": "the dashboard was not built: run `make install`"}, status_code=503
            )
        return FileResponse(HERE / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/dashboard/config.json", include_in_schema=False)
    def dashboard_config() -> dict[str, str | None]:
        return {"style_url": style_url}

    # Never made here: an installed package's folder may be read-only (the image's is).
    app.mount(
        "/dashboard/static",
        StaticFiles(directory=STATIC, check_dir=False),
        name="dashboard-static",
    )
