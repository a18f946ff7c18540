# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""A vLLM server that fails mid-run, with a real vLLM server on the CPU (started as `trl vllm-serve` starts it, by
`zvp_trl.launch.vllm_cpu.trl_vllm_server`), in ERPO's server-mode training (learning rate 0, the weight transfer
skipped as in test_server.py: TRL moves weights over NCCL, which needs CUDA).

- The server is SIGKILLed (with its engine processes) between two steps: the run stops with an error naming the
  server, its URL and the last complete checkpoint; that checkpoint holds the per-prompt state, and against a server
  restarted at the same URL the run resumes from it (its state at the start equal to the checkpoint's) and trains on.
- The server answers generation requests with HTTP errors (through a forwarding proxy that fails the requests it is
  told to): TRL's client retries a 500/502/503 answer up to 3 times (and a refused connection 5 times, with
  exponential backoff), so one failed answer is retried and the run goes on; an error that outlasts the retries stops
  the run as above, and it resumes and finishes.
"""

import http.client
import http.server
import json
import re
import threading
import urllib.parse
from pathlib import Path

from conftest import run_script
from zvp_trl.core.checkpoints import is_complete_checkpoint


def zvp_state(checkpoint: Path) -> dict:
    """The checkpoint's per-run state, without the record of the method that wrote it (no trainer state holds it)."""
    state = json.loads((checkpoint / "zvp_state.json").read_text())
    assert set(state.pop("written_by")) == {"trainer", "parts"}
    return state


def train(model: str, output_dir: Path, result: Path, url: str, *extra, check: bool = True):
    return run_script(
        "vllm_run.py", "--algorithm", "erpo", "--model", model, "--output_dir", output_dir, "--result", result,
        "--server_base_url", url, "--skip_weight_transfer", "--learning_rate", 0, "--max_steps", 4,
        "--save_steps", 1, *extra, check=check,
    )  # fmt: skip


def assert_resumed_from(run: Path, checkpoint: Path, result: Path) -> None:
    """The resumed run started from the checkpoint's per-prompt state and trained to the end."""
    resumed = json.loads(result.read_text())
    assert resumed["global_step"] == 4
    assert resumed["state_at_begin"] == zvp_state(checkpoint)
    assert is_complete_checkpoint(str(run / "checkpoint-4"))
    assert resumed["state_at_end"] == zvp_state(run / "checkpoint-4") != zvp_state(checkpoint)


def test_server_killed_between_steps_stops_clearly_and_resumes_on_a_restarted_server(vllm_model_path, tmp_path):
    from zvp_trl.launch.vllm_cpu import trl_vllm_server

    run = tmp_path / "run"
    env = {"HF_HUB_OFFLINE": "1"}
    with trl_vllm_server(vllm_model_path, tmp_path / "server-1.log", max_model_len=128, env=env) as url:
        port = urllib.parse.urlparse(url).port
        stopped = train(
            vllm_model_path, run, tmp_path / "killed.json", url, "--kill_server", f"{url.process.pid},3", check=False
        )
        assert url.process.wait(timeout=30) == -9  # it was killed, not stopped by the trainer
    assert stopped.returncode != 0
    message = next(line for line in stopped.stderr.splitlines() if "RuntimeError: The vLLM server at" in line)
    assert f"The vLLM server at {url} failed a generation request at step 3" in message
    assert f"last complete checkpoint is {run / 'checkpoint-2'}" in message
    assert "resume_from_checkpoint=True" in message
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert all(is_complete_checkpoint(str(p)) for p in run.glob("checkpoint-*"))

    # The same URL, served again by a fresh server: the run resumes from checkpoint-2 and finishes.
    with trl_vllm_server(vllm_model_path, tmp_path / "server-2.log", max_model_len=128, env=env, port=port) as again:
        assert again == url
        result = tmp_path / "resumed.json"
        train(vllm_model_path, run, result, again, "--resume", run / "checkpoint-2")
    assert_resumed_from(run, run / "checkpoint-2", result)


class FailingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to `upstream`, but answers the generation requests (`POST /v1/completions`, counted from
    1) whose numbers are in `fail` with HTTP 500 itself. `bodies` holds every generation request's body, `failed` the
    numbers it failed."""

    def __init__(self, upstream: str, fail: set[int]):
        self.upstream = urllib.parse.urlparse(upstream)
        self.fail = fail
        self.bodies: list[bytes] = []
        self.failed: list[int] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: FailingProxy

    def log_message(self, *args):
        pass

    def _forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        if self.command == "POST" and self.path.startswith("/v1/completions"):
            with self.server.lock:
                self.server.bodies.append(body)
                number = len(self.server.bodies)
                fail = number in self.server.fail
                if fail:
                    self.server.failed.append(number)
            if fail:
                payload = json.dumps({"error": "injected failure"}).encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
        upstream = http.client.HTTPConnection(self.server.upstream.hostname, self.server.upstream.port, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = _forward


def serve(proxy: FailingProxy) -> FailingProxy:
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return proxy


def test_one_http_error_is_retried_and_the_run_goes_on(server, vllm_model_path, tmp_path):
    proxy = serve(FailingProxy(server, fail={3}))
    try:
        result = tmp_path / "result.json"
        train(vllm_model_path, tmp_path / "run", result, proxy.url)
    finally:
        proxy.shutdown()
    assert json.loads(result.read_text())["global_step"] == 4
    assert proxy.failed == [3]
    # TRL's client sent the failed 3rd request again. ERPO sends a step's requests (one per distinct temperature) at
    # once, so the retry need not be the next request: a sibling sent beside the failed one can come between them.
    assert proxy.bodies[2] in proxy.bodies[3:]


def test_http_errors_beyond_the_retries_stop_clearly_and_the_run_resumes(server, vllm_model_path, tmp_path):
    run = tmp_path / "run"
    # From the 3rd generation request on, every answer is a 500: more than the client retries. ERPO sends one request
    # per distinct temperature of a step, so the step that holds the 3rd request is read from the error.
    proxy = serve(FailingProxy(server, fail=set(range(3, 100))))
    try:
        stopped = train(vllm_model_path, run, tmp_path / "failed.json", proxy.url, check=False)
    finally:
        proxy.shutdown()
    assert stopped.returncode != 0
    message = next(line for line in stopped.stderr.splitlines() if "RuntimeError: The vLLM server at" in line)
    step = int(re.search(r"failed a generation request at step (\d+)", message).group(1))
    assert 2 <= step <= 3
    assert f"The vLLM server at {proxy.url} failed a generation request" in message
    assert "too many 500 error responses" in message
    assert f"last complete checkpoint is {run / f'checkpoint-{step - 1}'}" in message
    assert sorted(p.name for p in run.glob("checkpoint-*")) == [f"checkpoint-{s}" for s in range(1, step)]
    assert len(proxy.failed) >= 4  # the failing request and its 3 retries

    result = tmp_path / "resumed.json"
    train(vllm_model_path, run, result, server, "--resume", run / f"checkpoint-{step - 1}")
    assert_resumed_from(run, run / f"checkpoint-{step - 1}", result)
