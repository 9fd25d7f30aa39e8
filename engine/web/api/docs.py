"""``/docs``: the API's documentation page, Swagger UI served from the package itself.

The page loads only files of its own (static/), under the API's CSP (scripts and styles
from 'self', no inline code): its script is static/docs.js, which points Swagger UI at
``openapi.json`` beside the page. Swagger UI is vendored from the npm package
swagger-ui-dist (Apache-2.0; static/swagger-ui/LICENSE).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import HTMLResponse

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tact API</title>
<link rel="icon" type="image/png" href="static/swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="static/swagger-ui/swagger-ui.css">
<link rel="stylesheet" href="static/docs.css">
</head>
<body>
<noscript><p>This page needs JavaScript. The API's description is
<a href="openapi.json">openapi.json</a>.</p></noscript>
<div id="swagger-ui"></div>
<script src="static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="static/docs.js"></script>
</body>
</html>
"""


@router.get("/docs", response_class=HTMLResponse)
def docs_page() -> HTMLResponse:
    return HTMLResponse(PAGE)
