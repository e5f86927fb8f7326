"""Browser tests: the explorer notebook in JupyterLab 4 and Notebook 7, driven by headless Chromium.

Each test starts a Jupyter server on 127.0.0.1 (free port, token and password off, ``--allow-root``,
``--no-browser``) in a temporary folder holding a copy of ``notebooks/explorer.ipynb``, opens it in
Debian's Chromium through Playwright (never ``playwright install``), waits until the kernel is
connected and idle, runs all cells, changes a selector of the explorer and checks that the views
changed in the page (DOM) and in the kernel (widget state read over the kernel's websocket), and
saves a screenshot under the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("HACKRISK_CHROMIUM", "/usr/bin/chromium")
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


def _requirements() -> None:
    if not Path(CHROMIUM).exists():
        if CI:
            pytest.fail(f"{CHROMIUM} is missing under CI: `apt-get install -y chromium` (make system-deps)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium); browser tests skipped")
    for mod in ("playwright", "jupyterlab", "notebook", "websocket"):
        try:
            __import__(mod)
        except ImportError:
            if CI:
                pytest.fail(f"python package {mod!r} missing under CI")
            pytest.skip(f"python package {mod!r} not installed; browser tests skipped")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310  (localhost only)
        return json.loads(r.read())


class _Server:
    def __init__(self, app: str, root: Path, log: Path):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
               "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "PYTHONUNBUFFERED": "1"}
        env.pop("JUPYTER_TOKEN", None)
        settings = root / ".settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
        cmd = [sys.executable, "-m", "jupyter", app, "--no-browser", "--allow-root",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
               "--ServerApp.disable_check_xsrf=True",
               f"--LabServerApp.user_settings_dir={root / '.settings'}",
               f"--LabServerApp.workspaces_dir={root / '.workspaces'}"]
        if app == "lab":
            cmd.append("--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
        self.log = log
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter {app} exited: {log.read_text()[-3000:]}")
            try:
                _get(f"{self.base}/api/status", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"jupyter {app} did not start in 90 s: {log.read_text()[-3000:]}")

    def kernel(self, notebook: str) -> dict:
        for s in _get(f"{self.base}/api/sessions"):
            if s.get("path", "").endswith(notebook) and s.get("kernel"):
                return _get(f"{self.base}/api/kernels/{s['kernel']['id']}")
        return {}

    def wait_kernel_ready(self, notebook: str, timeout: float = 120) -> dict:
        """Wait until the notebook's kernel has a websocket connection and is idle."""
        deadline = time.monotonic() + timeout
        k: dict = {}
        while time.monotonic() < deadline:
            k = self.kernel(notebook)
            if k and k.get("connections", 0) >= 1 and k.get("execution_state") == "idle":
                return k
            time.sleep(0.5)
        raise AssertionError(f"kernel of {notebook} not connected+idle after {timeout} s: {k}")

    def execute(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run ``code`` in the kernel over its websocket; return its stdout."""
        import websocket

        session = uuid.uuid4().hex
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels?session_id={session}", timeout=timeout)
        try:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "username": "test", "session": session, "msg_type": "execute_request",
                           "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True},
            }))
            out, deadline = [], time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                t = msg["header"]["msg_type"]
                if t == "stream":
                    out.append(msg["content"]["text"])
                elif t == "error":
                    raise AssertionError("kernel error: " + "\n".join(msg["content"]["traceback"]))
                elif t == "status" and msg["content"]["execution_state"] == "idle":
                    return "".join(out)
            raise AssertionError("no reply from the kernel")
        finally:
            ws.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _run_explorer(app: str, url_path: str, tmp_path: Path) -> None:
    _requirements()
    from playwright.sync_api import sync_playwright

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "explorer.ipynb", work / "explorer.ipynb")
    server = _Server(app, work, tmp_path / f"jupyter-{app}.log")
    console: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            try:
                page.goto(f"{server.base}/{url_path}")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                kernel = server.wait_kernel_ready("explorer.ipynb")
                # the UI agrees: the execution indicator shows an idle kernel
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)

                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_text("Run All Cells", exact=True).click()
                root = page.locator(".hackrisk-explorer")
                root.locator(".hr-heatmap rect.cell").first.wait_for(timeout=180_000)
                # all cells done: the last one's output is there and the kernel is idle again
                page.wait_for_function("document.querySelectorAll('.jp-OutputArea-output').length >= 7", timeout=180_000)
                server.wait_kernel_ready("explorer.ipynb")
                page.wait_for_function(
                    "document.querySelectorAll('.hackrisk-explorer input[data-name=\"models\"]:checked').length === 2")

                def dom():
                    return page.evaluate("""() => {
                        const r = document.querySelector('.hackrisk-explorer');
                        return {cells: r.dataset.cells, risk: r.dataset.risk,
                                heat: r.querySelectorAll('.hr-heatmap rect.cell').length,
                                bars: Array.from(r.querySelectorAll('.hr-errorbars rect.bar')).map(b => b.dataset.value),
                                status: r.querySelector('.hr-status').textContent};
                    }""")

                before = dom()
                n_prompts = 4
                assert before["heat"] == 2 * n_prompts, before  # the notebook kept two models
                page.screenshot(path=str(tmp_path / f"{app}-before.png"), full_page=True)

                # change a selector in the page: add model3
                root.locator("input[data-name='models'][data-value='model3']").check()
                page.wait_for_function(
                    f"document.querySelectorAll('.hackrisk-explorer .hr-heatmap rect.cell').length === {3 * n_prompts}")
                after = dom()
                assert after["cells"] != before["cells"] and after["status"] != before["status"], (before, after)
                assert int(after["cells"]) > int(before["cells"])
                # and alpha
                root.locator("select[data-name='alpha']").select_option("0.1")
                page.wait_for_function(f"document.querySelector('.hackrisk-explorer').dataset.risk !== '{after['risk']}'")
                final = dom()
                assert final["bars"] != after["bars"]
                # linked views: clicking a point of the risk curve chooses that hypothesis
                point = root.locator(".hr-riskcurve circle.point:not(.selected)").first
                chosen = point.get_attribute("data-hypothesis")
                point.click(force=True)
                page.wait_for_function(
                    f"document.querySelector('.hackrisk-explorer').dataset.hypothesis === '{chosen}'")
                assert root.locator("select[data-name='hypothesis']").input_value() == chosen
                assert root.locator(".hr-p-spec h4").inner_text().startswith("Specification curve:")
                page.screenshot(path=str(tmp_path / f"{app}-explorer.png"), full_page=True)
                root.screenshot(path=str(tmp_path / f"{app}-widget.png"))

                # the kernel sees the same selection and state
                got = json.loads(server.execute(kernel["id"], (
                    "import json; print(json.dumps({'models': explorer.models, 'alpha': explorer.alpha, "
                    "'hypothesis': explorer.hypothesis, 'cells': explorer.view['summary']['n_cells'], "
                    "'risk': explorer.view['summary']['risk']}))")))
                assert got["hypothesis"] == int(chosen)
                assert got["models"] == ["model0", "model1", "model3"], got
                assert got["alpha"] == 0.1
                assert str(got["cells"]) == final["cells"] and str(got["risk"]) == final["risk"], (got, final)
            finally:
                page.screenshot(path=str(tmp_path / f"{app}-last.png"), full_page=True)
                (tmp_path / f"{app}-console.log").write_text("\n".join(console))
                browser.close()
    finally:
        server.stop()
    assert (tmp_path / f"{app}-explorer.png").stat().st_size > 10_000


def test_explorer_in_jupyterlab(tmp_path):
    _run_explorer("lab", "lab/tree/explorer.ipynb", tmp_path)


def test_explorer_in_notebook7(tmp_path):
    _run_explorer("notebook", "notebooks/explorer.ipynb", tmp_path)


def test_report_opens_in_chromium(tmp_path):
    _requirements()
    from playwright.sync_api import sync_playwright

    import hackrisk as hr
    from hackrisk.analysis.frequentist import test_hypotheses as run_tests
    from hackrisk.analysis.risk import risk
    from hackrisk.hypotheses import generate_hypotheses
    from hackrisk.report import write_report

    cube, _ = hr.simulate_multiverse(n_tasks=1, n_items=300, models=3, n_prompts=2, rng=2)
    tests = run_tests(cube, generate_hypotheses(cube))
    path = write_report(tests, tmp_path / "report.html", cube=cube, n_boot=50, rng=0)
    want = f"{100 * float(risk(tests, n_boot=50, rng=0)['risk_pooled'].sel(ci='estimate')):.1f}%"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        assert page.locator("[data-metric='risk_pooled'] .v").inner_text() == want
        widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        assert len(widths) == 5 and min(widths) > 300  # every embedded figure decoded
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
