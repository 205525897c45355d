"""Serves the page and its static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

HERE = Path(__file__).parent
FILES = ("app.js", "review.js", "overview.js", "app.css")
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index() -> str:
    return (HERE / "templates" / "index.html").read_text(encoding="utf-8")


@router.get("/ui/{name}")
def static(name: str):
    path = HERE / "static" / name
    if name not in FILES or not path.is_file():
        return HTMLResponse("not found", status_code=404)
    return FileResponse(path, media_type="text/javascript" if name.endswith(".js") else "text/css")
