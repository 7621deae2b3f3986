"""The diagnosis rules on synthetic event streams: every code firing and not firing, no finding on
the noise of a run's first logs, and a finding raised once then updated."""

from __future__ import annotations

import json
import math
import random

import pytest

from cockpit.diagnose import Diagnoser, Finding, diagnose_events, load_findings, save_findings

CONFIG = {
    "run": {"type": "sft"},
    "model": {"finetune": "lora", "dtype": "auto"},
    "lora": {"r": 16},
    "data": {"eval_split": 0.1, "loss_on": "completion", "eval_path": None},
    "train": {"learning_rate": 2e-4, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
              "max_length": 1024, "gradient_checkpointing": False, "eval_strategy": "steps", "eval_steps": 50,
              "logging_steps": 10, "max_steps": -1, "num_train_epochs": 3, "warmup_ratio": 0.0, "warmup_steps": 0,
              "max_grad_norm": 1.0, "save_best": False},
}


NO_EVAL = json.loads(json.dumps(CONFIG))
NO_EVAL["data"]["eval_split"] = 0.0
NO_EVAL["train"]["eval_strategy"] = "no"


def ev(type_: str, step: int | None = None, **payload) -> dict:
    return {"v": 1, "type": type_, "time": 0.0, "step": step, **payload}


def started(config: dict | None = None, grpo: bool = False) -> dict:
    cfg = json.loads(json.dumps(config or CONFIG))
    if grpo:
        cfg["run"]["type"] = "grpo"
        cfg["grpo"] = {"num_generations": 4, "max_completion_length": 256, "beta": 0.04, "temperature": 0.9}
    return ev("run_started", None, config=cfg)


def plan(total: int = 1000, spe: int = 100, eval_records: int = 50, **kw) -> dict:
    p = {"total_steps": total, "num_epochs": total / spe, "steps_per_epoch": spe, "train_records": spe * 8,
         "eval_records": eval_records, "effective_batch_size": 8, "eval_enabled": eval_records > 0, **kw}
    return ev("status", 0, phase="training", plan=p)


def healthy_losses(n: int, seed: int = 0, start: float = 2.5, floor: float = 0.8, noise: float = 0.08) -> list[float]:
    rng = random.Random(seed)
    return [floor + (start - floor) * math.exp(-i / (n / 4)) + rng.gauss(0, noise) for i in range(n)]


def metrics(losses, every: int = 10, grads=None, lrs=None, spe: int = 100, **extra) -> list[dict]:
    out = []
    for i, loss in enumerate(losses):
        step = (i + 1) * every
        payload = {"loss": loss, "epoch": step / spe,
                   "grad_norm": grads[i] if grads is not None else 1.0 + 0.1 * math.sin(i),
                   "learning_rate": lrs[i] if lrs is not None else 2e-4 * (1 - i / (len(losses) + 1))}
        payload.update({k: (v[i] if isinstance(v, list) else v) for k, v in extra.items()})
        if grads is not None and grads[i] is None:
            del payload["grad_norm"]
        out.append(ev("metrics", step, **payload))
    return out


def codes(events) -> dict[str, Finding]:
    return {f.code: f for f in diagnose_events(events)}


def healthy_run(n: int = 100, seed: int = 0) -> list[dict]:
    events = [started(), plan(total=n * 10)]
    for i, e in enumerate(metrics(healthy_losses(n, seed))):
        events.append(e)
        if (i + 1) % 5 == 0:
            events.append(ev("eval", e["step"], eval_loss=0.9 + 1.5 * math.exp(-i / 25), epoch=e["epoch"]))
    events.append(ev("run_finished", n * 10, status="completed"))
    return events


# ---- the API ------------------------------------------------------------------------------


def test_finding_round_trip_and_storage(tmp_path):
    finding = Finding("divergence", "red", "Loss diverged", 40, {"ratio": 3.5}, "loss 7 at step 40", "lower --lr",
                      {"train.learning_rate": 5e-5}, 40, 60)
    assert Finding.from_dict(finding.to_dict()) == finding
    assert Finding.from_dict({"code": "x"}).severity == "info"
    save_findings(tmp_path, [Finding("plateau", "amber", "t"), finding])
    loaded = load_findings(tmp_path)
    assert [f.code for f in loaded] == ["divergence", "plateau"]  # most severe first
    assert load_findings(tmp_path / "nowhere") == []


@pytest.mark.parametrize("seed", range(5))
def test_healthy_run_raises_nothing(seed):
    assert codes(healthy_run(seed=seed)) == {}


def test_no_rule_fires_on_the_noise_of_the_first_logs():
    first = [9.0, 2.1, 7.5, 1.2, 6.0]  # wild first logs: tiny batches, warm-up
    losses = first + healthy_losses(95, start=2.4)
    grads = [float("nan"), float("inf"), 40.0, 0.5, 9.0] + [1.0] * 95
    lrs = [0.0, 0.0, 1e-5, 5e-5, 1e-4] + [2e-4] * 95
    events = [started(NO_EVAL), plan(total=1000, eval_records=0)] + metrics(losses, grads=grads, lrs=lrs)
    assert codes(events) == {}


def test_raised_once_then_updated():
    diagnoser = Diagnoser()
    raised = []
    for event in [started(NO_EVAL), plan(total=1000, eval_records=0)] + metrics([2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.45, 7.0, 1.4, 1.4]
                                                           + [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]):
        for f in diagnoser.feed(event):
            raised.append((f.code, f.severity, f.updates))
    assert raised[0] == ("loss-spike", "info", 0)  # a single jump that comes back down is a spike
    assert ("divergence", "red", 0) in raised  # then the level climbs and stays up: a divergence
    divergence, spike = diagnoser.findings  # the cause first, the spike points to it
    assert divergence.code == "divergence" and divergence.cause is None and divergence.first_step > 80
    assert spike.code == "loss-spike" and spike.cause == "divergence" and spike.first_step == 80
    assert spike.fix.startswith("caused by divergence") and spike.overrides == divergence.overrides
    assert [code for code, _, _ in raised].count("divergence") >= 2  # raised, then updated as it climbs
    assert diagnoser.feed(ev("memory", 170, gpus=[])) == []  # nothing new
    assert diagnoser.feed(ev("some_future_type", 170)) == []


def test_findings_are_json_and_most_severe_first():
    events = [started(), plan(total=12, spe=4)] + metrics([2.0] * 5 + [float("nan")], spe=4)
    findings = diagnose_events(events)
    assert [f.severity for f in findings] == sorted((f.severity for f in findings), key=["red", "amber", "info"].index)
    json.dumps([f.to_dict() for f in findings], allow_nan=False)


# ---- data and plan ------------------------------------------------------------------------


def dataset(train: dict | None = None, eval_records: int | None = 20, **kw) -> dict:
    splits = {"train": {"records": 100, "truncated": 0, "completion_lost": 0, "trained_tokens": 5000, **(train or {})}}
    if eval_records is not None:
        splits["eval"] = {"records": eval_records}
    payload = {"format": "messages", "max_length": 1024, "loss_on": "completion", "splits": splits,
               "keep_max_length": {"p100": 1500, "p99": 1400}, "warnings": [], "has_chat_template": True,
               "chat_template_ok": True, **kw}
    return ev("dataset", None, **payload)


def test_truncation():
    found = codes([started(), dataset({"truncated": 40, "completion_lost": 40})])["truncation"]
    assert found.severity == "red" and found.overrides == {"train.max_length": 1536}
    assert "--max-length 1536" in found.fix and "40 of 100" in found.evidence_text
    assert codes([started(), dataset({"truncated": 2})])["truncation"].severity == "amber"
    assert "truncation" not in codes([started(), dataset()])
    # The engine refuses to start when max_length leaves no completion: the error carries its code and fix as data.
    error = ev("error", None, kind="data", code="completion_lost", overrides={"train.max_length": 704},
               message="completion_lost: 9 records whose whole completion max_length cuts away (first at data.jsonl:1); "
               "fix: raise max_length: --max-length 704")
    found = codes([started(), error])
    assert found["truncation"].overrides == {"train.max_length": 704} and "crash" not in found
    # The message is prose for people: a number in it is never read back.
    error = ev("error", None, kind="data", code="completion_lost", message="use --max-length 700")
    assert codes([started(), error])["truncation"].overrides == {}


def test_chat_template():
    assert codes([started(), dataset(has_chat_template=False)])["chat-template"].severity == "red"
    assert codes([started(), dataset(chat_template_ok=False)])["chat-template"].severity == "red"
    assert "chat-template" not in codes([started(), dataset()])
    assert "chat-template" not in codes([dataset(format="text", has_chat_template=False)])


def test_labels_masked():
    assert codes([started(), dataset({"trained_tokens": 0})])["labels-masked"].severity == "red"
    samples = ev("samples", None, samples=[{"index": i, "trained_tokens": 0, "segments": []} for i in range(3)])
    assert "labels-masked" in codes([started(), samples])
    zero = [started(), plan()] + metrics([0.0] * 6, grads=[0.0] * 6)
    found = codes(zero)["labels-masked"]
    assert found.severity == "red" and found.first_step == 30 and "data.loss_on=all" in found.fix
    assert codes(metrics([0.0] * 6, grads=[None] * 6)).get("labels-masked")  # no grad_norm logged at all
    assert "labels-masked" not in codes([started()] + metrics([1.0, 0.0, 0.0, 0.0, 0.0, 0.0], grads=[0.0] * 6))
    assert "labels-masked" not in codes([started(grpo=True)] + metrics([0.0] * 10, reward=0.5))  # GRPO starts at 0


def test_eval_missing():
    found = codes([started(), dataset(eval_records=None), plan(eval_records=0)])["eval-missing"]
    assert found.severity == "red" and found.overrides == {"data.eval_split": 0.1}
    nan = codes([started(), plan()] + metrics(healthy_losses(10)) + [ev("eval", 100, eval_loss="NaN")])
    assert nan["eval-missing"].severity == "red"
    never = codes([started(), plan()] + metrics(healthy_losses(12)))  # eval every 50 steps, none by 120
    assert never["eval-missing"].severity == "amber"
    assert "eval-missing" not in codes([started(), plan()] + metrics(healthy_losses(9)))
    assert "eval-missing" not in codes([started(NO_EVAL), plan(eval_records=0)] + metrics(healthy_losses(20)))
    assert "eval-missing" not in codes(healthy_run())


def test_too_few_steps():
    found = codes([started(), plan(total=12, spe=4)])["too-few-steps"]
    assert found.severity == "amber" and found.overrides == {"train.num_train_epochs": 10}
    smoke = json.loads(json.dumps(CONFIG))
    smoke["train"]["max_steps"] = 6
    assert codes([started(smoke), plan(total=6, spe=4)])["too-few-steps"].severity == "info"
    assert "too-few-steps" not in codes([started(), plan(total=300)])


# ---- the training curve -------------------------------------------------------------------


def test_loss_nan():
    found = codes([started(), plan()] + metrics([2.0, 1.9, "NaN"]))["loss-nan"]
    assert found.severity == "red" and found.first_step == 30 and found.overrides["train.learning_rate"] == 5e-5
    assert "loss-nan" not in codes([started(), plan()] + metrics([2.0, 1.9, 1.8]))
    # NaN weights: some trainers then report a loss of exactly 0 beside a NaN grad_norm.
    nan = float("nan")
    found = codes([started(), plan()] + metrics([7.5, 8.0, 6.8, 9.5] + [0.0] * 10, grads=[2.3, 124.0, 7e12] + [nan] * 11))
    assert found["loss-nan"].first_step == 50 and "weights are NaN" in found["loss-nan"].evidence_text
    assert "memorization" not in found


def test_grad_nan():
    grads = [1.0] * 30
    grads[20] = float("inf")
    assert codes([started(), plan()] + metrics(healthy_losses(30), grads=grads))["grad-nan"].severity == "info"
    grads[21] = grads[22] = float("nan")
    found = codes([started(), plan()] + metrics(healthy_losses(30), grads=grads))["grad-nan"]
    assert found.severity == "red" and found.overrides.get("model.dtype") == "bf16"
    assert "grad-nan" not in codes([started(), plan()] + metrics(healthy_losses(30)))


def test_divergence():
    losses = healthy_losses(30, noise=0.02) + [3.0, 4.5, 6.0, 7.0, 8.0, 9.0, 9.5]
    found = codes([started(), plan()] + metrics(losses))["divergence"]
    assert found.severity == "red" and found.overrides["train.learning_rate"] == 5e-5
    assert found.overrides["train.warmup_ratio"] == 0.05 and "--lr 5e-5" in found.fix
    spike = healthy_losses(30, noise=0.02) + [4.0] + healthy_losses(10, start=0.9, floor=0.85, noise=0.01)
    found = codes([started(), plan()] + metrics(spike))
    assert "divergence" not in found and found["loss-spike"].severity == "info"  # one log that comes back down
    assert "divergence" not in codes([started(), plan()] + metrics(healthy_losses(60, noise=0.2)))
    # A loss already near 0 that bounces by a few hundredths has not diverged.
    tiny = [0.25, 0.14, 0.09, 0.05, 0.05] + [0.02 + 0.03 * (i % 3) for i in range(40)]
    assert "divergence" not in codes([started(), plan()] + metrics(tiny))


def test_grad_spike():
    grads = [1.0 + 0.05 * (i % 4) for i in range(40)]
    grads[25] = 15.0
    found = codes([started(), plan()] + metrics(healthy_losses(40), grads=grads))["grad-spike"]
    assert found.severity == "info" and found.evidence["worst_step"] == 260
    grads[30] = grads[35] = 20.0
    assert codes([started(), plan()] + metrics(healthy_losses(40), grads=grads))["grad-spike"].severity == "amber"
    grads = [1.0 + 0.05 * (i % 4) for i in range(40)]
    grads[25] = 5.0  # 5x: a rough batch, not a spike
    assert "grad-spike" not in codes([started(), plan()] + metrics(healthy_losses(40), grads=grads))


def test_lr_zero():
    found = codes([started(), plan()] + metrics(healthy_losses(20), lrs=[0.0] * 20))["lr-zero"]
    assert found.severity == "red"
    lrs = [0.0] + [2e-4] * 18 + [0.0]  # warm-up from 0 and a decay that ends at 0 are normal
    assert "lr-zero" not in codes([started(), plan()] + metrics(healthy_losses(20), lrs=lrs))


def test_overfitting_names_the_best_checkpoint():
    events = [started(), plan()]
    train = metrics(healthy_losses(100, noise=0.01))
    evals = [1.5, 1.2, 1.0, 0.95, 0.97, 1.02, 1.08, 1.15]
    for i, e in enumerate(train):
        events.append(e)
        if (i + 1) % 10 == 0 and (i + 1) // 10 <= len(evals):
            events.append(ev("eval", e["step"], eval_loss=evals[(i + 1) // 10 - 1], epoch=e["epoch"]))
            events.append(ev("checkpoint", e["step"], path=f"runs/x/checkpoints/checkpoint-{e['step']}"))
    found = codes(events)["overfitting"]
    assert found.severity == "amber" and found.evidence["best_step"] == 400
    assert "checkpoint-400 holds it" in found.evidence_text and found.overrides == {"train.num_train_epochs": 4}


def test_overfitting_not_raised_when_eval_keeps_falling_or_train_rises_too():
    assert "overfitting" not in codes(healthy_run())
    events = [started(), plan()]
    for i, (loss, value) in enumerate(zip([1.0, 1.0, 1.0, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5], [0.9, 0.8, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1, 1.2])):
        events += metrics([loss] * 5, every=1)[:0] + [ev("metrics", i * 10 + j, loss=loss, learning_rate=1e-4) for j in range(1, 6)]
        events.append(ev("eval", i * 10 + 5, eval_loss=value))
    assert "overfitting" not in codes(events)


def test_memorization():
    losses = healthy_losses(60, start=2.0, floor=0.01, noise=0.001)
    found = codes([started(), plan(total=600, spe=60)] + metrics(losses, spe=60))["memorization"]
    assert found.severity == "amber" and found.overrides == {"train.num_train_epochs": 3, "data.eval_split": 0.1}
    assert "memorization" not in codes([started(), plan()] + metrics(losses, spe=1000))  # 0.6 epoch
    zero = [0.8, 0.3, 0.1, 0.01] + [0.0] * 30
    assert codes([started(), plan()] + metrics(zero, spe=1000))["memorization"].severity == "info"


def test_plateau():
    losses = healthy_losses(30, noise=0.01) + [1.2 + 0.02 * math.sin(i) for i in range(170)]
    found = codes([started(), plan(total=2000)] + metrics(losses))["plateau"]
    assert found.severity == "amber" and found.overrides == {"train.learning_rate": 4e-4}
    assert "plateau" not in codes([started(), plan(total=2000)] + metrics(healthy_losses(200)))


# ---- how the run ended --------------------------------------------------------------------


def test_oom_suggests_values():
    found = codes([started(), plan(), ev("error", 10, kind="oom", message="CUDA out of memory. Tried to allocate 2 GiB")])["oom"]
    assert found.severity == "red"
    assert found.overrides == {"train.per_device_train_batch_size": 4, "train.gradient_accumulation_steps": 2,
                               "train.gradient_checkpointing": True, "train.longest_first": True}
    assert "--batch-size 4 --grad-accum 2" in found.fix and "--max-length 512" in found.fix and "--qlora" in found.fix
    assert "--longest-first" in found.fix and "after step 10" in found.fix
    # An event from before batch and memory were recorded still reads as one line with the allocator's words.
    assert found.evidence_text == "out of memory after step 10: CUDA out of memory. Tried to allocate 2 GiB"


def test_oom_names_step_batch_and_memory():
    memory = {"device": "cuda:0", "used_mb": 80793.6, "total_mb": 81510.4, "tried_mb": 2048.0,
              "cuda": [{"index": 0, "allocated_mb": 78000.0, "reserved_mb": 79000.0, "free_mb": 716.8, "total_mb": 81510.4}]}
    error = ev("error", 37, kind="oom", message="OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
               batch={"size": 8, "seq_len": 2048, "tokens": 15000, "phase": "train"}, memory=memory)
    long = json.loads(json.dumps(CONFIG))
    long["train"]["max_length"] = 4096
    found = codes([started(long), plan(), error])["oom"]
    assert found.evidence_text == ("out of memory after step 37 on a batch of 8 x 2048 tokens: 78.9 of 79.6 GiB in use on cuda:0; "
                                   "it asked for 2.0 GiB more")
    assert found.step == 37 and found.evidence["seq_len"] == 2048 and found.evidence["used_mb"] == 80793.6
    assert found.overrides["train.per_device_train_batch_size"] == 4 and found.overrides["train.gradient_checkpointing"] is True
    assert "--max-length 1024" in found.fix  # half the batch that failed: max_length 4096 was never reached
    # In the first step, or with longest_first already on, there is nothing to gain from it.
    first = codes([started(), plan(), dict(error, step=0)])["oom"]
    assert first.evidence_text.startswith("out of memory in the first step on a batch of 8 x 2048 tokens")
    assert "train.longest_first" not in first.overrides and "longest-first" not in first.fix
    on = json.loads(json.dumps(CONFIG))
    on["train"]["longest_first"] = True
    assert "train.longest_first" not in codes([started(on), plan(), error])["oom"].overrides
    evaluating = codes([started(), plan(), dict(error, batch={"size": 8, "seq_len": 2048, "phase": "eval"})])["oom"]
    assert evaluating.evidence_text.startswith("out of memory while evaluating at step 37 on a batch of 8 x 2048 tokens")
    assert "train.longest_first" not in evaluating.overrides


def test_crash():
    found = codes([started(), ev("error", 5, kind="crash", message="RuntimeError: boom\nmore", traceback="...")])["crash"]
    assert found.severity == "red" and found.evidence_text == "RuntimeError: boom"
    assert "crash" in codes([started(), ev("run_finished", 5, status="failed")])
    assert "crash" not in codes([started(), ev("run_finished", 5, status="stopped")])


# ---- GRPO ---------------------------------------------------------------------------------


def grpo_run(n: int = 40, **series) -> list[dict]:
    rng = random.Random(1)
    events = [started(NO_EVAL, grpo=True), plan(total=n * 10, eval_records=0)]
    for i in range(n):
        payload = {"loss": 0.0, "grad_norm": 0.3, "learning_rate": 5e-6, "reward": 0.2 + 0.03 * i + rng.gauss(0, 0.05),
                   "reward_std": 0.4, "frac_reward_zero_std": 0.2, "completions/clipped_ratio": 0.05,
                   "completions/mean_length": 120.0, "kl": 0.01 + 0.001 * i, "entropy": 0.8}
        for key, values in series.items():
            payload[key.replace("__", "/")] = values[i] if isinstance(values, list) else values
        events.append(ev("metrics", (i + 1) * 10, **payload))
    return events


def test_healthy_grpo_run_raises_nothing():
    assert codes(grpo_run()) == {}


def test_reward_zero_std():
    assert codes(grpo_run(frac_reward_zero_std=0.9))["reward-zero-std"].severity == "red"
    old = [e for e in grpo_run(reward_std=0.0)]
    for e in old:
        e.pop("frac_reward_zero_std", None)
    assert "reward-zero-std" in codes(old)
    assert "reward-zero-std" not in codes(grpo_run(frac_reward_zero_std=0.5))


def test_completions_clipped():
    found = codes(grpo_run(completions__clipped_ratio=0.95, completions__mean_length=250.0))["completions-clipped"]
    assert found.severity == "red" and found.overrides == {"grpo.max_completion_length": 512}
    assert "--max-completion-length 512" in found.fix
    half = codes(grpo_run(completions__clipped_ratio=0.5))["completions-clipped"]  # a third cut is already a problem
    assert half.severity == "amber" and half.title == "Many completions clipped at max length"
    assert "completions-clipped" not in codes(grpo_run(completions__clipped_ratio=0.2))


def test_reward_flat():
    rng = random.Random(3)
    assert codes(grpo_run(reward=[0.5 + rng.gauss(0, 0.1) for _ in range(40)]))["reward-flat"].severity == "amber"


def test_kl_blowup():
    assert codes(grpo_run(kl=2.0))["kl-blowup"].severity == "amber"
    found = codes(grpo_run(kl=[0.01] * 20 + [15.0] * 20))["kl-blowup"]
    assert found.severity == "red" and found.overrides["grpo.beta"] == 0.08


def test_entropy_collapse():
    found = codes(grpo_run(entropy=[0.8] * 10 + [0.02] * 30))["entropy-collapse"]
    assert found.severity == "amber" and found.overrides["grpo.temperature"] == 1.1


def test_old_grpo_field_names_are_understood():
    events = grpo_run()
    for e in events:
        if e["type"] == "metrics":
            e["completion_length"] = 255.0
            e["rewards/correct_fn"] = e.pop("reward")
            e.pop("completions/mean_length")
            e.pop("completions/clipped_ratio")
            e["lr"] = e.pop("learning_rate")
    found = codes(events)
    assert "completions-clipped" in found  # mean length 255 of max_completion_length 256
    assert "reward-flat" not in found  # the per-function reward rises: it became `reward`


def test_overfitting_from_the_gap_when_eval_never_follows():
    """The train loss falls to a tenth while eval_loss stays where the run began: no rise after a
    best (the classic test), but nothing learned carries over."""
    events = [started(), plan(total=200, spe=10, eval_records=40)]
    losses = healthy_losses(20, start=7.5, floor=0.3, noise=0.01)
    for i, event in enumerate(metrics(losses, spe=10)):
        events.append(event)
        if (i + 1) % 5 == 0:
            events.append(ev("eval", event["step"], eval_loss=7.0 + 0.01 * (i % 3), epoch=event["epoch"]))
    found = codes(events)["overfitting"]
    assert found.evidence["kind"] == "gap" and found.severity == "amber"
    assert "does not carry" in found.evidence_text and found.first_step == found.evidence["eval_best_step"]
    healthy = [started(), plan(total=200, spe=10, eval_records=40)]
    for i, event in enumerate(metrics(losses, spe=10)):
        healthy.append(event)
        if (i + 1) % 5 == 0:
            healthy.append(ev("eval", event["step"], eval_loss=losses[i] * 1.2, epoch=event["epoch"]))
    assert "overfitting" not in codes(healthy)


def test_a_step_going_back_is_named_and_folded_once():
    events = [started(), plan()] + metrics(healthy_losses(30)) + metrics(healthy_losses(10))
    found = codes(events)["step-backtrack"]
    assert found.severity == "info" and "from 300 to 10" in found.evidence_text


def test_a_truncation_fix_that_would_not_fit_keeps_99_percent_instead():
    """One 16k-token record among short ones: keeping it needs max_length 16064, which a 0.5B model
    on a 24 GB GPU cannot hold (the estimate says so from the model's config.json); the fix offered
    keeps 99% and drops the longest, a fix the user can take."""
    from engine import config as config_mod

    full = config_mod.resolve(preset="small-dataset", sets=["model.name_or_path=builtin:shape:qwen2.5-0.5b"])
    gpu = [{"index": 0, "name": "RTX 4090", "total_mb": 24564, "bf16": True}]
    lint = [{"code": "truncated", "severity": "error", "count": 1, "overrides": {"train.max_length": 16064}}]
    events = [ev("run_started", None, config=full),
              ev("estimate", None, verdict="fits", device="gpu", gpus=gpu, capacity_bytes=24564 * 2**20),
              dataset({"records": 4, "truncated": 1}, max_length=1024, keep_max_length={"p100": 16055, "p99": 900}, lint=lint)]
    found = codes(events)["truncation"]
    assert found.overrides == {"train.max_length": 960, "data.too_long": "drop"}, found.fix
    assert "keeping every record needs" in found.fix and "--max-length 960" in found.fix
    # On a GPU that holds it, keeping every record stays the fix.
    big = [{"index": 0, "name": "H200", "total_mb": 143771, "bf16": True}]
    events[1] = ev("estimate", None, verdict="fits", device="gpu", gpus=big, capacity_bytes=143771 * 2**20)
    assert codes(events)["truncation"].overrides == {"train.max_length": 16064}
