"""Each force's live alert dashboard: one page, served by the control plane at /dashboard/.

The page is built from ``api/dashboard`` (TypeScript, MapLibre GL, npm packages pinned by
its package-lock.json) into ``static/`` by ``make install``: every asset is served from
here, none from a CDN, since a force's network may be closed. The page signs in with the
API's own routes and reads the force's live feed; it holds no data the API does not give an
officer or analyst of the force.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

HERE: Final = Path(__file__).parent
STATIC: Final = HERE / "static"
#: The file the build writes last is the bundle: its presence says the page was built.
BUNDLE: Final = STATIC / "app.js"


def mount(app: FastAPI, style_url: str | None) -> None:
    """The page, its assets and its settings, under /dashboard (public: the page signs in)."""

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

    STATIC.mkdir(exist_ok=True)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
