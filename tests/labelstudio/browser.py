"""Driving Label Studio's labelling page in a real headless Chromium, as an annotator would (issue 14 item 7).

Debian's ``chromium`` package (scripts/setup.sh installs it) driven by Playwright from PyPI: Playwright's own
browser download is not reachable here, so the executable is named explicitly. Everything read from the page is
read the way the browser holds it — the decoded ``<img>`` and ``<audio>`` elements, the ticked checkbox, the
links of the evidence — and every wait is on a condition, never a fixed sleep.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

#: Environment variable naming the Chromium executable (else Debian's, then `chromium` on PATH).
CHROMIUM_ENV = "ANNOTATOR_CHROMIUM"
#: Environment variable naming the folder test artifacts (screenshots) go to (else tests/artifacts/).
ARTIFACTS_ENV = "ANNOTATOR_TEST_ARTIFACTS"
#: Debian's browser binary (/usr/bin/chromium is a shell wrapper around it).
DEBIAN_CHROMIUM = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
#: How long one wait on the page may take (ms): a loaded 2-core machine needs seconds for the first paint.
WAIT_MS = 30_000
#: Chromium switches: no sandbox (root in a container has none to give), no GPU, audio without a device.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
)
REPO_ROOT = Path(__file__).resolve().parents[2]
#: An element page on openstreetmap.org, e.g. https://www.openstreetmap.org/way/1000.
OSM_ELEMENT_URL = re.compile(r"^https://(?:www\.)?openstreetmap\.org/(node|way|relation)/(\d+)/?$")


def _wait(page: Page, condition: str, what: str, arg: Any = None) -> None:
    """Wait until the JS `condition` holds; on timeout fail saying what was awaited (not a bare TimeoutError)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, arg=arg, timeout=WAIT_MS)
    except PlaywrightTimeout:
        raise AssertionError(f"{what}: not so after {WAIT_MS / 1000:.0f} s on {page.url}") from None


def chromium_path() -> Path | None:
    """The Chromium executable to drive, or None when none is installed."""
    named = os.environ.get(CHROMIUM_ENV)
    candidates = [named] if named else [*DEBIAN_CHROMIUM, shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def artifacts_dir() -> Path:
    """The folder test artifacts go to: $ANNOTATOR_TEST_ARTIFACTS, else tests/artifacts/ (git-ignored)."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or REPO_ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def launch(playwright: Playwright, executable: Path) -> Browser:
    """A headless Chromium from `executable` (never Playwright's own download)."""
    return playwright.chromium.launch(executable_path=str(executable), headless=True, args=list(CHROMIUM_ARGS))


def log_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Log in through Label Studio's own form, as a person would."""
    page.goto(f"{base_url}/user/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url, timeout=WAIT_MS)


def stream_url(base_url: str, ls_project_id: int) -> str:
    """The project's labelling stream ("Label All Tasks")."""
    return f"{base_url}/projects/{ls_project_id}/data?labeling=1"


def open_stream(page: Page, base_url: str, ls_project_id: int) -> dict[str, Any]:
    """Open the labelling stream; returns the task it serves (the answer to its ``next_task`` action: id, data…)."""
    with page.expect_response(
        lambda r: "/api/dm/actions" in r.url and "id=next_task" in r.url and r.request.method == "POST",
        timeout=WAIT_MS,
    ) as answer:
        page.goto(stream_url(base_url, ls_project_id))
    assert answer.value.ok, f"the stream's next task answered {answer.value.status}"
    task: dict[str, Any] = answer.value.json()
    return task


def instructions_modal(page: Page) -> tuple[str, str]:
    """The (title, text) of the instructions Label Studio shows before the first task; waits for it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    modal = page.locator(".lsf-modal-ls_visible").filter(has_text="Instructions")
    try:
        modal.first.wait_for(state="visible", timeout=WAIT_MS)
    except PlaywrightTimeout:
        raise AssertionError(f"no instructions shown within {WAIT_MS / 1000:.0f} s on {page.url}") from None
    title = modal.first.locator(".lsf-modal-ls__title").inner_text()
    return title, modal.first.inner_text()


def close_instructions(page: Page) -> None:
    """Close the instructions modal as a person would (its close button) and wait until it is gone."""
    page.locator(".lsf-modal-ls_visible button[aria-label='Close modal']").first.click()
    page.locator(".lsf-modal-ls_visible").filter(has_text="Instructions").first.wait_for(
        state="hidden", timeout=WAIT_MS
    )


def wait_for_images(page: Page, count: int) -> list[dict[str, Any]]:
    """The labelling view's images once `count` are decoded: natural size and SHA-256 of the bytes shown.

    Label Studio loads an Image control's URL itself and shows it as a ``blob:`` URL; hashing that blob ties each
    ``<img>`` to the file it shows. Its ``<img>`` elements carry ``alt="image"`` whatever the control's name.
    """
    _wait(
        page,
        """n => {
            const shown = Array.from(document.querySelectorAll('.lsf-image img, img[alt=image]'));
            return shown.filter(i => i.complete && i.naturalWidth > 0).length >= n;
        }""",
        f"{count} image(s) decoded in the labelling view",
        count,
    )
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const shown = Array.from(new Set(document.querySelectorAll('.lsf-image img, img[alt=image]')));
            const out = [];
            for (const img of shown) {
                const bytes = await (await fetch(img.src)).arrayBuffer();
                const digest = await crypto.subtle.digest('SHA-256', bytes);
                const hex = Array.from(new Uint8Array(digest)).map(b => b.toString(16).padStart(2, '0')).join('');
                out.push({width: img.naturalWidth, height: img.naturalHeight, sha256: hex, src: img.src});
            }
            return out;
        }"""
    )
    return found


def wait_for_audio(page: Page) -> dict[str, Any]:
    """The labelling view's ``<audio>`` once its metadata is loaded: its source, duration (s) and readyState."""
    _wait(
        page,
        """() => {
            const audio = document.querySelector('audio');
            return audio && audio.readyState >= 1 && Number.isFinite(audio.duration) && audio.duration > 0;
        }""",
        "the <audio> element has loaded its metadata",
    )
    found: dict[str, Any] = page.evaluate(
        """() => {
            const audio = document.querySelector('audio');
            return {src: audio.getAttribute('src'), duration: audio.duration, readyState: audio.readyState};
        }"""
    )
    return found


def checked_choices(page: Page) -> list[str]:
    """The choices ticked right now (Label Studio names each choice's checkbox after its value)."""
    names: list[str] = page.evaluate(
        "() => Array.from(document.querySelectorAll('.lsf-choice input:checked')).map(i => i.name)"
    )
    return names


def wait_for_choice(page: Page, value: str) -> None:
    """Wait until exactly the choice `value` is ticked (failing with what is ticked instead)."""
    try:
        _wait(
            page,
            """v => {
                const ticked = Array.from(document.querySelectorAll('.lsf-choice input:checked')).map(i => i.name);
                return ticked.length === 1 && ticked[0] === v;
            }""",
            f"only {value!r} ticked",
            value,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; ticked: {checked_choices(page)}") from None


def choice_hotkeys(page: Page) -> dict[str, str]:
    """Choice value → the hotkey Label Studio assigned it (the ``[1]`` hint beside each choice)."""
    pairs: list[list[str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('.lsf-choice')).map(c => {
            const input = c.querySelector('input');
            const hint = c.querySelector('.lsf-hint');
            return [input ? input.name : '', hint ? hint.textContent : ''];
        })"""
    )
    keys: dict[str, str] = {}
    for value, hint in pairs:
        key = hint.strip().strip("[]")
        if value and key:
            keys[value] = key
    return keys


def links(page: Page) -> list[dict[str, str]]:
    """Every link on the page and in its frames (HyperText renders inside an ``about:srcdoc`` iframe)."""
    found: list[dict[str, str]] = []
    for frame in page.frames:
        found += frame.evaluate(
            "() => Array.from(document.querySelectorAll('a[href]')).map(a => ({href: a.href, text: a.textContent}))"
        )
    return found


def osm_element_links(found: list[dict[str, str]]) -> set[tuple[str, int]]:
    """The OSM elements linked among `found` links, as (type, id)."""
    out: set[tuple[str, int]] = set()
    for link in found:
        match = OSM_ELEMENT_URL.match(link["href"])
        if match:
            out.add((match.group(1), int(match.group(2))))
    return out


def local_file(url: str, files_root: Path) -> Path:
    """The file behind a ``/data/local-files/?d=<path>`` task URL (relative to the server's files root)."""
    served = parse_qs(urlparse(url).query)["d"][0]
    return files_root / served


def submit(page: Page, task_id: int) -> dict[str, Any]:
    """Submit the current annotation with Ctrl+Enter; returns the created annotation as the server answered."""
    with page.expect_response(
        lambda r: (
            re.search(rf"/api/tasks/{task_id}/annotations/?(\?|$)", r.url) is not None and r.request.method == "POST"
        ),
        timeout=WAIT_MS,
    ) as answer:
        page.keyboard.press("Control+Enter")
    assert answer.value.status == 201, f"submitting answered {answer.value.status}: {answer.value.text()[:300]}"
    created: dict[str, Any] = answer.value.json()
    return created
