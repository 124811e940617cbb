"""The local demo (`make demo`): the whole product on the local cluster, end to end.

1. starts the local cluster (building the pinned binaries on first use);
2. installs the Helm chart (the operator runs as a pod, with the chart's RBAC);
3. applies examples/nano-4b.yaml in namespace ``ai`` and waits for it to be Ready;
4. through the router, with the official ``openai`` client, asks a reasoning-on question, a
   reasoning-off question and one that calls a tool, and prints the answers;
5. sends a short burst and prints the autoscaler's reaction (replicas per pool over time).

It leaves everything running and prints the kubeconfig and the endpoint; ``make demo-down``
stops the cluster. There is no kube-proxy in the local cluster, so the demo calls a router pod
by its IP; in a real cluster clients use the Service (``http://nano-4b.ai.svc/v1``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
from openai.types.chat import ChatCompletionToolParam

from nemotron_operator.devcluster.binaries import ensure_binaries
from nemotron_operator.devcluster.cluster import Cluster

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "ai"
OPERATOR_NAMESPACE = "nemotron-system"
NAME = "nano-4b"


def say(message: str) -> None:
    print(message, flush=True)


class Kubectl:
    def __init__(self, kubectl: Path, kubeconfig: Path) -> None:
        self.base = [str(kubectl), f"--kubeconfig={kubeconfig}"]

    def __call__(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self("get", "-o", "json", *args))


def wait(what: str, predicate: Any, timeout: float, *, explain: Any = None) -> Any:
    """Poll ``predicate`` until truthy, printing progress every few seconds."""
    began = time.monotonic()
    last_print = began
    while True:
        value = predicate()
        if value:
            say(f"   {what}: done in {time.monotonic() - began:.1f}s")
            return value
        now = time.monotonic()
        if now - began > timeout:
            detail = f"\n{explain()}" if explain else ""
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        if now - last_print >= 5:
            say(f"   ... waiting for {what} ({now - began:.0f}s)")
            last_print = now
        time.sleep(0.5)


def condition(obj: dict[str, Any], kind: str) -> str | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def ready_router_ip(kubectl: Kubectl) -> str | None:
    pods = kubectl.json(
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        f"serving.nemotron.dev/deployment={NAME},app.kubernetes.io/component=router",
    )["items"]
    for pod in pods:
        if condition(pod, "Ready") == "True" and not pod["metadata"].get("deletionTimestamp"):
            return str(pod["status"]["podIP"])
    return None


def pool_replicas(kubectl: Kubectl) -> dict[str, tuple[int, int]]:
    out = {}
    for pool in ("on", "off"):
        dep = kubectl.json("deployment", "-n", NAMESPACE, f"{NAME}-{pool}")
        out[pool] = (
            int(dep["spec"].get("replicas", 0)),
            int(dep.get("status", {}).get("readyReplicas", 0)),
        )
    return out


TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["C", "F"]},
                },
                "required": ["city"],
            },
        },
    }
]


def ask(client: openai.OpenAI, model: str) -> None:
    say("\n4. Through the router with the openai client")
    on = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "detailed thinking on"},
            {"role": "user", "content": "How many r are in strawberry?"},
        ],
        max_tokens=2048,
    )
    message = on.choices[0].message
    reasoning = (message.model_extra or {}).get("reasoning") or (message.model_extra or {}).get(
        "reasoning_content"
    )
    say(f"   reasoning on  -> reasoning: {str(reasoning)[:120]!r}...")
    say(
        f"   reasoning on  -> answer: {str(message.content)[:160]!r} ({on.usage.completion_tokens if on.usage else '?'} tokens)"
    )
    off = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "detailed thinking off"},
            {"role": "user", "content": "Name the capital of France."},
        ],
    )
    say(f"   reasoning off -> answer: {str(off.choices[0].message.content)[:160]!r}")
    tool = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,
        tool_choice="required",
    )
    calls = tool.choices[0].message.tool_calls or []
    for call in calls:
        if call.type == "function":
            say(f"   tool call     -> {call.function.name}({call.function.arguments})")
    if not calls:
        raise SystemExit("the tool-call request returned no tool call")


async def burst(base_url: str, model: str, requests: int) -> tuple[int, int]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="demo", max_retries=0, timeout=300)

    async def one(i: int) -> bool:
        try:
            stream = await client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": "detailed thinking on"},
                    {"role": "user", "content": f"Prove that {i} + 1 > {i}."},
                ],
                max_tokens=1500,
                stream=True,
            )
            async for _ in stream:
                pass
            return True
        except openai.APIError as exc:
            say(f"   request {i} failed: {exc}")
            return False

    results = await asyncio.gather(*(one(i) for i in range(requests)))
    await client.close()
    return sum(results), len(results) - sum(results)


def main() -> int:
    began = time.monotonic()
    say(
        "1. Local cluster (real kube-apiserver, scheduler, controller-manager; kwok GPU nodes; pod runner)"
    )
    cluster = Cluster()
    cluster.up(progress=lambda m: say(f"   {m}"))
    bins = ensure_binaries(["kubectl", "helm"])
    kubectl = Kubectl(bins["kubectl"], cluster.kubeconfig_path)

    say("\n2. helm install the operator chart")
    proc = subprocess.run(
        [
            str(bins["helm"]),
            f"--kubeconfig={cluster.kubeconfig_path}",
            "upgrade",
            "--install",
            "nemotron-operator",
            str(REPO / "charts" / "nemotron-operator"),
            "--namespace",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--wait",
            "--timeout",
            "300s",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pods = kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide", check=False)
        logs = kubectl(
            "logs", "-n", OPERATOR_NAMESPACE, "deploy/nemotron-operator", "--tail=30", check=False
        )
        raise SystemExit(f"helm install failed: {proc.stderr.strip()}\n{pods}\n{logs}")
    say(f"   release nemotron-operator installed in {OPERATOR_NAMESPACE}")

    say("\n3. kubectl apply -f examples/nano-4b.yaml")

    def namespace_not_terminating() -> bool:
        proc = subprocess.run(
            [*kubectl.base, "get", "namespace", NAMESPACE, "-o", "json"],
            capture_output=True,
            text=True,
        )
        return (
            proc.returncode != 0 or json.loads(proc.stdout)["status"].get("phase") != "Terminating"
        )

    wait(
        f"namespace {NAMESPACE} (a previous one still terminating)", namespace_not_terminating, 180
    )
    kubectl("create", "namespace", NAMESPACE, check=False)
    kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "examples" / "nano-4b.yaml"))
    # An H100 runs hundreds of 4B sequences at once, so a short burst from one laptop-sized
    # client would never queue: cap the reasoning-on engines at 8 sequences so it does.
    say(
        "   kubectl patch: reasoning-on engines limited to --max-num-seqs 8 (so a small burst queues)"
    )
    kubectl(
        "patch",
        "nemotrondeployment",
        NAME,
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"pools": {"reasoningOn": {"engineArgs": ["--max-num-seqs", "8"]}}}}),
    )

    def ready_cr() -> dict[str, Any] | None:
        obj = kubectl.json("nemotrondeployment", "-n", NAMESPACE, NAME)
        fresh = obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
        return obj if fresh and condition(obj, "Ready") == "True" else None

    def explain() -> str:
        obj = kubectl.json("nemotrondeployment", "-n", NAMESPACE, NAME)
        conditions = json.dumps(obj.get("status", {}).get("conditions"), indent=1)
        return f"conditions: {conditions}\n" + kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide")

    cr = wait("NemotronDeployment Ready", ready_cr, 300, explain=explain)
    router_ip = wait("a Ready router pod", lambda: ready_router_ip(kubectl), 60)
    base_url = f"http://{router_ip}:8080/v1"
    spec_model = cr["spec"].get("servedModelName") or None
    client = openai.OpenAI(base_url=base_url, api_key="demo", max_retries=0, timeout=300)
    model = spec_model or client.models.list().data[0].id
    say(
        f"   endpoint in the cluster: {cr['status'].get('endpoint')}  (here: {base_url}, model {model!r})"
    )

    ask(client, model)

    say("\n5. A burst of 48 streaming reasoning-on requests; the autoscaler's reaction:")
    say("   t(s)  on desired/ready  off desired/ready")
    start = time.monotonic()
    task_result: dict[str, tuple[int, int]] = {}

    def run_burst() -> None:
        task_result["burst"] = asyncio.run(burst(base_url, model, 48))

    import threading

    thread = threading.Thread(target=run_burst)
    thread.start()
    last = None
    peak = 1
    while thread.is_alive() or time.monotonic() - start < 20:
        replicas = pool_replicas(kubectl)
        peak = max(peak, replicas["on"][0])
        if replicas != last:
            say(
                f"   {time.monotonic() - start:4.0f}  {replicas['on'][0]}/{replicas['on'][1]:<15} {replicas['off'][0]}/{replicas['off'][1]}"
            )
            last = replicas
        if time.monotonic() - start > 240:
            break
        time.sleep(1)
    thread.join()
    ok, failed = task_result["burst"]
    say(f"   burst: {ok} completed, {failed} failed; reasoning-on pool peaked at {peak} replicas")
    for event in kubectl.json(
        "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={NAME}"
    )["items"]:
        if "scal" in event.get("reason", "").lower() or "scal" in event.get("message", "").lower():
            say(f"   event: {event['reason']}: {event['message']}")

    say(f"\nDone in {time.monotonic() - began:.0f}s. The cluster keeps running:")
    say(f"   export KUBECONFIG={cluster.kubeconfig_path}")
    say(f"   endpoint: {base_url}  (in a real cluster: {cr['status'].get('endpoint')})")
    say("   make demo-down   # stop it")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
