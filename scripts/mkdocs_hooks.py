"""MkDocs hook: links from the manual to files of the repository outside docs/.

The pages link to repository files relatively (`../Dockerfile`), which works on GitHub. In the
built site such a link leads to the file in the repository when `repo_url` is set in mkdocs.yml,
and is otherwise shown as the path in code. A link to a file that does not exist is an error, so
the manual cannot point at a file that was moved or removed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"\[([^\]]+)\]\(((?:\.\./)+)([^)#\s]*)\)")


class MissingRepositoryFileError(Exception):
    """A page links to a repository file that does not exist."""


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    page_dir = (docs_dir / page.file.src_uri).parent
    repo = docs_dir.parent
    repo_url = (config.get("repo_url") or "").rstrip("/")

    def rewrite(m: re.Match[str]) -> str:
        text, ups, rest = m.group(1), m.group(2), m.group(3)
        target = (page_dir / (ups + rest)).resolve()
        if target.is_relative_to(docs_dir):
            return m.group(0)  # a page or image of the site: MkDocs checks it
        if not target.is_relative_to(repo) or not target.exists():
            raise MissingRepositoryFileError(
                f"{page.file.src_uri}: the link {ups + rest} names no file of the repository"
            )
        rel = target.relative_to(repo).as_posix()
        if repo_url:
            kind = "tree" if target.is_dir() else "blob"
            return f"[{text}]({repo_url}/{kind}/main/{rel})"
        if text.startswith("`") or text.strip("`/") == rel.strip("/"):
            return f"`{rel}`" if not text.startswith("`") else text
        return f"{text} (`{rel}`)"

    return _LINK.sub(rewrite, markdown)
