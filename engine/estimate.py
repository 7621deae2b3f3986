"""How much GPU memory a run will need, from its config, before any model loads; and the cheapest fix.

Standard library only: `cockpit run` prints it before it starts the engine, the TUI's form redraws it
at every change, and the engine records it as the `estimate` event (compared with the measured peak
at the end of the run). Model sizes come from engine/model_shape.py (headers, never weights).

The formula, per GPU, in bytes. P: the model's parameters; T: the trainable ones; e: bytes of the
compute dtype (2 in bf16/fp16, 4 in fp32); r: bytes of the residual stream between layers (4 where
the embeddings are fp32: full fine-tuning, QLoRA, fp32 runs; else e); h, i, L: hidden size,
intermediate size (x experts per token for MoE), layers; q = heads x head_dim; N tokens per micro
batch = batch x max_length (SFT pads to the longest example, so this is the bound a long batch hits).

- weights, as engine/models.py loads them: LoRA P x e; full fine-tuning P x 4 (fp32 masters under
  mixed precision) plus autocast's half copies of the matmul weights, e x (linear params + lm_head),
  alive through forward and backward; QLoRA: linear layers in NF4 with double quantisation,
  0.5 + 1/64 + 4/(64 x 256) bytes a parameter, the rest (embeddings, lm_head, norms) in fp32, because
  peft's prepare_model_for_kbit_training upcasts them. A GRPO run with beta > 0 and full fine-tuning
  adds a reference model, P x e (LoRA switches its adapters off instead).
- trainable: LoRA r x (in + out) per targeted linear ("all-linear": every linear but lm_head), fp32
  (peft upcasts adapters; TRL casts QLoRA's to bf16, and their gradients and AdamW states follow);
  full: all P. Gradients T x 4.
- optimizer states per trainable parameter: AdamW 8 (m and v in fp32); 8-bit AdamW 2; Lion 4
  (8-bit 1); SGD 0 (no momentum by default); RMSprop/Adagrad 4; Adafactor 4 x (rows + cols) per
  matrix (factored second moment, no first). An unknown optimizer counts as AdamW, and says so.
  torch's foreach AdamW (adamw_torch) allocates one more T x 4 while it steps.
- activations, after Korthikanti et al. 2022 ("Reducing activation recomputation") without the s²
  attention term (sdpa and flash attention keep no score matrix), counted for Hugging Face's Llama-
  style decoder layer, in bytes per token per layer:
      2 RMSNorms           2 x (4h + r x h if their weights train)   (each keeps an fp32 copy)
      attention (sdpa)     e x (2q + 2q)   (q, k and v expanded to every head under a padding mask, output)
      SwiGLU MLP           e x 3i          (gate, its activation, up)
      trained linears      (e + 1 if LoRA dropout) x sum of their in_features (the input each keeps:
                           autocast's copy, or peft's cast to the adapter's dtype; dropout's mask)
      padding mask         e x seq per token: each attention call turns the boolean mask into an
                           additive one and keeps it (none when packing)
  without checkpointing: L x that x N; with it: L x r x h x N (each layer's input) plus one layer
  recomputed. Beside the layers: the final norm, TRL's fused LM head (it never builds batch x seq x
  vocab logits: it keeps the hidden states, an fp32 gradient for them and one 4096 x 32768 tile,
  plus an fp32 weight gradient when lm_head trains), and in backward the residual gradient and one
  layer's MLP gradients. The layer and mask terms are checked against the bytes autograd saves for a
  small Llama on the CPU (tests/test_estimate.py: within 5% for LoRA and full fine-tuning); a whole
  estimate has not yet been compared with a measured GPU peak.
- GRPO: the micro batch is batch x num_generations sequences of max_prompt_length +
  max_completion_length; generation holds a KV cache of 2 x L x kv_heads x head_dim x e x length for
  every sequence of the generation batch (batch x num_generations x steps_per_generation, which TRL
  sets to gradient_accumulation_steps). The peak takes the larger of training and generation.
- several GPUs (run.gpus = n): ddp copies everything and adds gradient buckets (T x 4 again); fsdp
  and deepspeed-zero3 divide weights, gradients and optimizer states by n and gather two layers at a
  time; deepspeed-zero2 divides gradients and optimizer states. Activations are per GPU and stay.
- overhead: 0.5 GiB for the CUDA context and cuBLAS workspaces, plus 5% of the rest for the caching
  allocator's fragmentation. `total_bytes` is thus what NVML's "used" shows at the peak;
  `allocated_bytes` (without the overhead) compares with torch.cuda.max_memory_allocated().

With no GPU visible the engine trains on the CPU in fp32: the same sum, with the libraries' resident
memory (0.6 GiB) for overhead, is compared with the machine's RAM. QLoRA and fp16 need CUDA: they are
estimated for a GPU and compared with nothing.

Verdict: fits; tight above 90% of the smallest GPU used; will not fit above 100%. When tight or not
fitting, the cheapest change that brings it under 90% is searched in order of what it costs the
result: gradient checkpointing; a smaller batch with more accumulation (same effective batch); an
8-bit optimizer; LoRA instead of full; QLoRA instead of LoRA; a shorter max_length; more GPUs with
fsdp. When no single change is enough, they are combined in that order.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from engine import gpu
from engine import model_shape as shapes

GIB = 2**30
CUDA_OVERHEAD = GIB // 2  # CUDA context + cuBLAS/cuDNN workspaces, as NVML shows them on an idle process
CPU_OVERHEAD = int(0.6 * GIB)  # torch, transformers, trl and datasets imported: 0.43 GiB RSS measured, plus the data
FRAGMENTATION = 0.05  # the caching allocator's reserved-but-unused memory, a share of what is allocated
TIGHT = 0.9
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit weights, 8-bit absmax per 64, fp32 absmax per 256 of those
LOSS_TILE = (4096, 32768)  # TRL's fused LM head: tokens x vocabulary columns per tile
VERDICTS = ("fits", "tight", "will_not_fit", "no_gpu", "unknown")


@dataclass
class Fix:
    """A change that makes the run fit: in words, as config overrides, and as command-line options."""

    text: str
    overrides: dict[str, Any]
    cli: str
    total_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "overrides": self.overrides,
            "cli": self.cli,
            "total_bytes": self.total_bytes,
            "total_gib": round(self.total_bytes / GIB, 2),
        }


@dataclass
class Estimate:
    """The memory a run needs per GPU (or on the CPU), its parts, and whether it fits."""

    model: str
    verdict: str
    reason: str = ""  # why the size is unknown
    device: str = "gpu"  # "gpu" or "cpu"
    gpus: list[dict[str, Any]] = field(default_factory=list)  # the GPUs the run uses
    capacity_bytes: int | None = None  # the smallest used GPU's memory, or the RAM on the CPU
    components: dict[str, int] = field(default_factory=dict)
    activations_other: int = 0  # activations with gradient checkpointing the other way round
    activation_parts: dict[str, int] = field(default_factory=dict)  # layers, mask, head, beside
    total_bytes: int = 0
    fix: Fix | None = None
    assumptions: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.verdict != "unknown"

    @property
    def warn(self) -> bool:
        """Whether to warn: the run likely runs out of memory, or comes close."""
        return self.verdict in ("will_not_fit", "tight")

    def line(self, with_fix: bool = True) -> str:
        """One line for the terminal and the TUI's form; with_fix adds the fix when it warns."""
        if not self.known:
            if "not in the local Hugging Face cache" in self.reason:
                return f"memory estimate: size unknown until the model is downloaded ({self.reason})"
            return f"memory estimate: unknown ({self.reason})"
        a = self.assumptions
        where = f"{_gib(self.total_bytes)} GiB"
        if self.device == "cpu":
            where += f" on the CPU (no GPU visible) of {_gib(self.capacity_bytes)} GiB RAM"
        elif self.verdict == "no_gpu":
            needs = "QLoRA" if a["finetune"] == "qlora" else "fp16"
            where += f" per GPU ({needs} needs a CUDA GPU; none visible)"
        else:
            where += f" per GPU of {_gib(self.capacity_bytes)} GiB ({_gpu_label(self.gpus, a)})"
        verdict = {"fits": "fits", "tight": "tight", "will_not_fit": "will not fit"}.get(self.verdict)
        text = f"memory estimate: {where}" + (f": {verdict}" if verdict else "") + " — " + ", ".join(self._parts())
        if with_fix and self.warn:
            text += "; " + self.fix_text()
        return text

    def fix_text(self) -> str:
        """The fix in words and options, or that none is known."""
        if self.fix is None:
            return "no change the cockpit knows makes it fit"
        return f"fix: {self.fix.text} ({self.fix.cli}) -> {_gib(self.fix.total_bytes)} GiB"

    def _parts(self) -> list[str]:
        c, a = self.components, self.assumptions
        weights = f"weights {_size(c['weights'] + c['reference_model'])}"
        if c["weight_copies"]:
            weights += f" (+{_size(c['weight_copies'])} autocast copies)"
        opt = _optim_label(a["optimizer"])
        if a["finetune"] == "full":
            parts = [weights, f"grads {_size(c['gradients'])}", f"{opt} {_size(c['optimizer'])}"]
        else:
            parts = [weights, f"LoRA+grads+{opt} {_size(c['adapter'] + c['gradients'] + c['optimizer'])}"]
        parts.append(f"activations {_size(c['activations'])} (checkpointing {'on' if a['gradient_checkpointing'] else 'off'})")
        if c["generation"] > c["activations"]:
            parts.append(f"generation {_size(c['generation'])}")
        if c["optimizer_step"] > c["activations"] + c["weight_copies"]:
            parts.append(f"optimizer step {_size(c['optimizer_step'])}")
        parts.append(f"overhead {_size(c['overhead'])}")
        return parts

    def lines(self) -> list[str]:
        """A table of the parts with what each assumes, the verdict and the fix."""
        if not self.known:
            return [self.line()]
        c, a = self.components, self.assumptions
        ckpt = "on" if a["gradient_checkpointing"] else "off"
        rows = [
            f"memory estimate for {self.model}: {_count(a['params'])} parameters ({a['source']}), {a['finetune']}, {a['precision']}",
            f"  weights         {_col(c['weights'])}  in {a['weights_dtype']}",
        ]
        if c["weight_copies"]:
            rows.append(f"  autocast copies {_col(c['weight_copies'])}  half-precision copies of the matmul weights")
        if c["reference_model"]:
            rows.append(f"  reference model {_col(c['reference_model'])}  GRPO's frozen copy (beta > 0)")
        if c["adapter"]:
            rows.append(f"  LoRA adapters   {_col(c['adapter'])}  {_count(a['trainable_params'])} parameters in {a['trainable_dtype']}")
        rows += [
            f"  gradients       {_col(c['gradients'])}  {a['trainable_dtype']}",
            f"  optimizer       {_col(c['optimizer'])}  {a['optimizer']}: {a['optimizer_bytes_per_param']:g} bytes per trainable parameter",
            f"  activations     {_col(c['activations'])}  {a['tokens']} tokens a micro batch, checkpointing {ckpt} "
            f"({_gib(self.activations_other)} GiB with it {'off' if ckpt == 'on' else 'on'})",
        ]
        if c["generation"]:
            rows.append(f"  generation      {_col(c['generation'])}  KV cache of {a['generation_sequences']} sequences")
        if c["optimizer_step"]:
            rows.append(f"  optimizer step  {_col(c['optimizer_step'])}  foreach AdamW's temporaries (not at the same time as activations)")
        rows.append(f"  overhead        {_col(c['overhead'])}  {'CUDA context' if self.device == 'gpu' else 'libraries'} + allocator")
        capacity = "" if self.capacity_bytes is None else f" of {_gib(self.capacity_bytes)} GiB"
        per = "on the CPU" if self.device == "cpu" else "per GPU"
        rows.append(f"  total           {_col(self.total_bytes)}  {per}{capacity}: {self.verdict.replace('_', ' ')}")
        rows += [f"  note: {n}" for n in self.notes]
        if self.warn and self.fix:
            rows.append(f"  fix: {self.fix.text}: {self.fix.cli} -> {_gib(self.fix.total_bytes)} GiB")
        return rows

    def payload(self) -> dict[str, Any]:
        """The `estimate` event's payload."""
        overhead = self.components.get("overhead", 0)
        return {
            "model": self.model,
            "verdict": self.verdict,
            "line": self.line(),
            "reason": self.reason or None,
            "device": self.device,
            "gpus": self.gpus,
            "capacity_bytes": self.capacity_bytes,
            "total_bytes": self.total_bytes,
            "total_gib": round(self.total_bytes / GIB, 2),
            "allocated_bytes": self.total_bytes - overhead if self.known else None,
            "components": self.components,
            "activations_checkpointing_other": self.activations_other,
            "activation_parts": self.activation_parts,
            "fix": self.fix.as_dict() if self.fix else None,
            "assumptions": self.assumptions,
            "notes": self.notes,
        }


def _gib(n: int | float | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f}"


def _size(n: int) -> str:
    """GiB with one decimal; small parts in MiB so a tiny model does not read as all zeros."""
    return f"{n / GIB:.1f}" if n >= 0.05 * GIB else f"{n / 2**20:.0f} MiB"


def _col(n: int) -> str:
    """A size for the table's column: GiB, or MiB under 0.05 GiB."""
    return f"{n / GIB:>7.1f} GiB" if n >= 0.05 * GIB else f"{n / 2**20:>7.0f} MiB"


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _gpu_label(gpus: list[dict[str, Any]], a: dict[str, Any]) -> str:
    name = str(gpus[0].get("name", "GPU")).replace("NVIDIA ", "") if gpus else "GPU"
    if a["gpus"] > 1:
        return f"{a['gpus']}x {name}, {a['distributed']}"
    return name


def _optim_label(optim: str) -> str:
    if optim.startswith(("adamw", "paged_adamw", "adam")):
        return "AdamW 8-bit" if "8bit" in optim else "AdamW"
    return optim


# ---- the GPUs ------------------------------------------------------------------------------


def visible_gpus() -> list[dict[str, Any]]:
    """The GPUs CUDA would use (CUDA_VISIBLE_DEVICES honoured), from NVML: [] without a driver.

    Each: {index, name, total_mb, used_mb, bf16}. NVML is light to import; torch is never touched.
    """
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no nvidia-ml-py, no driver, no GPU: all mean "no GPU visible"
        return []
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        out = []
        for index in gpu.cuda_visible(handles, pynvml):
            handle = handles[index]
            name = pynvml.nvmlDeviceGetName(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                major, _ = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            except pynvml.NVMLError:
                major = 8
            out.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "total_mb": round(mem.total / 2**20, 1),
                    "used_mb": round(mem.used / 2**20, 1),
                    "bf16": major >= 8,  # Ampere and later
                }
            )
        return out
    except pynvml.NVMLError:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


# ---- the parts -----------------------------------------------------------------------------


def optimizer_bytes(optim: str) -> tuple[float, float, str]:
    """(state bytes per trainable parameter, step temporaries per parameter, note) for `train.optim`."""
    o = optim.lower()
    if "adafactor" in o:
        return -1.0, 0.0, ""  # factored: computed from the matrices by the caller
    if "4bit" in o:
        return 1.0, 0.0, ""
    if "8bit" in o:
        return (1.0 if ("lion" in o or "rmsprop" in o) else 3.0 if "ademamix" in o else 2.0), 0.0, ""
    if "lion" in o or "rmsprop" in o or "adagrad" in o:
        return 4.0, 0.0, ""
    if o == "sgd":
        return 0.0, 0.0, ""
    if "lomo" in o:
        return 0.0, 0.0, ""
    if "ademamix" in o:
        return 12.0, 0.0, ""
    if o.startswith(("adamw", "adam", "paged_adamw")):
        # torch's foreach AdamW builds sqrt(v) for every parameter at once; the fused one works in place
        foreach = o in ("adamw_torch", "adamw_hf", "adamw")
        return 8.0, 4.0 if foreach else 0.0, ""
    return 8.0, 0.0, f"optimizer {optim} is unknown to the estimate: counted as AdamW (8 bytes per trainable parameter)"


def _targets(linears: list[shapes.Linear], target_modules: Any) -> list[shapes.Linear]:
    """The linears peft's LoRA adapts: all-linear, a regex string, or a list of module name suffixes."""
    if target_modules == "all-linear":
        return list(linears)
    if isinstance(target_modules, str):
        try:
            pattern = re.compile(target_modules)
            return [lin for lin in linears if pattern.fullmatch(lin.name)]
        except re.error:  # not a regex: peft would fail on it too; read it as one module name
            target_modules = [target_modules]
    wanted = [str(t) for t in target_modules or []]
    return [lin for lin in linears if any(lin.name == t or lin.name.endswith("." + t) for t in wanted)]


_LAYER0 = re.compile(r"(^|\.)(layers|layer|h|blocks)\.0\.")
_VISION = re.compile(r"vision|visual")  # a multimodal model's image tower: not on the text tokens' path


def _per_layer_inputs(shape: shapes.ModelShape, trained: list[shapes.Linear]) -> float:
    """Sum of in_features over the trained linears one token passes through in one layer."""
    first = [lin for lin in trained if _LAYER0.search(lin.name) and not _VISION.search(lin.name)]
    if not first:
        return sum(lin.in_features for lin in trained) / max(shape.num_layers, 1)
    n_experts = len({lin.name.split(".experts.")[1].split(".")[0] for lin in first if ".experts." in lin.name})
    # a token visits experts_per_token of the layer's experts
    return sum(lin.in_features * (shape.experts_per_token / n_experts if ".experts." in lin.name else 1) for lin in first)


@dataclass
class _Run:
    """The config's numbers the formula reads."""

    finetune: str
    precision: str
    e: int
    r: int
    ckpt: bool
    batch: int
    grad_accum: int
    seqs: int  # sequences in one micro batch
    seq_len: int
    loss_tokens: int  # tokens the LM head scores
    packing: bool
    optim: str
    lora_r: int
    lora_dropout: float
    targets: Any
    gpus: int
    distributed: str
    grpo: bool
    gen_sequences: int
    beta: float


def _run_numbers(cfg: dict[str, Any], precision: str) -> _Run:
    m, t, run = cfg["model"], cfg["train"], cfg.get("run", {})
    trl = cfg.get("trl") or {}
    finetune = m["finetune"]
    e = 4 if precision == "fp32" else 2
    r = 4 if (finetune in ("full", "qlora") or e == 4) else e
    ckpt = bool(trl.get("gradient_checkpointing", trl.get("activation_checkpointing", t["gradient_checkpointing"])))
    batch, ga = int(t["per_device_train_batch_size"]), int(t["gradient_accumulation_steps"])
    gpus = int(run.get("gpus", 1) or 1)
    grpo = run.get("type") == "grpo"
    if grpo:
        g = cfg["grpo"]
        group = int(g["num_generations"])
        seq_len = int(g["max_prompt_length"]) + int(g["max_completion_length"])
        seqs = batch * group
        loss_tokens = seqs * int(g["max_completion_length"])
        if trl.get("generation_batch_size"):
            gen = int(trl["generation_batch_size"]) // max(gpus, 1)
        else:
            gen = seqs * int(trl.get("steps_per_generation") or ga)
        beta = float(g["beta"])
    else:
        seq_len, seqs = int(t["max_length"]), batch
        loss_tokens, gen, beta = batch * seq_len, 0, 0.0
    return _Run(
        finetune=finetune, precision=precision, e=e, r=r, ckpt=ckpt, batch=batch, grad_accum=ga, seqs=seqs,
        seq_len=seq_len, loss_tokens=loss_tokens, packing=bool(t.get("packing")), optim=str(t["optim"]),
        lora_r=int(cfg["lora"]["r"]), lora_dropout=float(cfg["lora"]["dropout"]), targets=cfg["lora"]["target_modules"],
        gpus=gpus, distributed=str(run.get("distributed", "ddp")), grpo=grpo, gen_sequences=gen, beta=beta,
    )


def _activation_parts(shape: shapes.ModelShape, run: _Run, trained: list[shapes.Linear], ckpt: bool) -> dict[str, int]:
    """Activation bytes of one micro batch through forward and backward, by part (see the module docstring).

    layers: what the decoder layers keep for backward (with checkpointing: each layer's input and one
    layer recomputed); mask: the padding mask, turned into an additive one in the compute dtype by
    every attention call that keeps it; head: TRL's fused LM head; beside: the final norm and the
    gradients in flight during backward.
    """
    h, L, e, r = shape.hidden_size, shape.num_layers, run.e, run.r
    q = shape.num_heads * shape.head_dim
    kv_saved = 2 * shape.num_kv_heads * shape.head_dim if run.packing else 2 * q  # repeat_kv under a padding mask
    inter = shape.intermediate_size * shape.experts_per_token
    full = run.finetune == "full"
    per_token_layer = (
        2 * (4 * h + (r * h if full else 0))  # two RMSNorms: an fp32 copy of the input, the output if their weight trains
        + e * (2 * q + kv_saved)  # sdpa keeps q, k, v and its output
        + e * 3 * inter  # SwiGLU: gate, its activation, up
        + (e + (1 if (run.lora_dropout > 0 and not full) else 0)) * _per_layer_inputs(shape, trained)  # + dropout's bool mask
    )
    tokens = run.seqs * run.seq_len
    layers = (L * r * h + per_token_layer) * tokens if ckpt else L * per_token_layer * tokens
    mask = 0 if run.packing else run.seqs * run.seq_len**2 * e * ((1 if ckpt else L) + 1)
    tile = min(LOSS_TILE[0], run.loss_tokens) * min(LOSS_TILE[1], shape.vocab_size) * e
    head_grad = shape.vocab_size * h * 4 if full else 0  # the fused head's fp32 weight gradient, beside .grad
    head = (2 * e + 4) * h * run.loss_tokens + tile + head_grad
    # final norm; in backward the residual gradient and one layer's MLP gradients
    beside = (4 * h + (r * h if full else 0) + 2 * r * h + 2 * e * inter) * tokens
    return {"layers": int(layers), "mask": int(mask), "head": int(head), "beside": int(beside)}


def _generation(shape: shapes.ModelShape, run: _Run, prompt_len: int) -> int:
    """GRPO's generation: the KV cache of the whole generation batch plus one layer of the prefill."""
    if not run.grpo:
        return 0
    kv = 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * run.e * run.seq_len * run.gen_sequences
    prefill = run.gen_sequences * prompt_len * (4 * shape.hidden_size + 3 * shape.intermediate_size) * run.e
    sampling = run.gen_sequences * shape.vocab_size * 4 * 3  # last-token logits, softmax, sort for top-k/p
    return int(kv + prefill + sampling)


def _precision(dtype: str, gpus: list[dict[str, Any]], device: str) -> str:
    """What gpu.pick_precision would choose: bf16 where every GPU has it, else fp16; fp32 on the CPU."""
    if dtype != "auto":
        return dtype
    if device == "cpu":
        return "fp32"
    return "bf16" if all(g.get("bf16", True) for g in gpus) else "fp16"


def _compute(
    cfg: dict[str, Any], shape: shapes.ModelShape, used: list[dict[str, Any]], device: str
) -> tuple[dict[str, int], int, dict[str, int], dict[str, Any], list[str]]:
    """(components, activations with checkpointing the other way, activation parts, assumptions, notes)."""
    precision = _precision(cfg["model"]["dtype"], used, device)
    run = _run_numbers(cfg, precision)
    notes: list[str] = list(shape.notes)
    P, lin = shape.params, shape.linear_params

    copies = 0
    if run.finetune == "qlora":
        weights, wdtype = lin * NF4_BYTES + (P - lin) * 4, "NF4 (linear layers) + fp32 (embeddings, norms)"
    elif run.finetune == "full" or run.e == 4:
        weights, wdtype = P * 4, "fp32"
        if run.e == 2:
            copies = (lin + shape.vocab_size * shape.hidden_size) * run.e
    else:
        weights, wdtype = P * run.e, precision

    if run.finetune == "full":
        trained = list(shape.linears)
        trainable, adapter = P, 0
    else:
        trained = _targets(shape.linears, run.targets)
        if not trained:
            notes.append(f"lora.target_modules {run.targets!r} matches no linear layer of this model")
        trainable = sum(run.lora_r * (x.in_features + x.out_features) for x in trained)
    # TRL casts QLoRA's adapters to bf16 (the QLoRA paper's recipe); elsewhere they train in fp32.
    pbytes = 2 if (run.finetune == "qlora" and run.e == 2) else 4
    adapter = 0 if run.finetune == "full" else trainable * pbytes
    grads = trainable * pbytes
    per_param, step_per_param, note = optimizer_bytes(run.optim)
    if note:
        notes.append(note)
    if pbytes == 2 and "8bit" not in run.optim and "4bit" not in run.optim:
        per_param, step_per_param = per_param / 2, step_per_param / 2  # torch keeps states in the parameter's dtype
    if per_param < 0:  # Adafactor: a row and a column of fp32 statistics per matrix
        if run.finetune == "full":
            optimizer = 4 * (sum(x.in_features + x.out_features for x in trained) + (P - lin))
        else:
            optimizer = 4 * sum(2 * run.lora_r + x.in_features + x.out_features for x in trained)
        per_param = optimizer / max(trainable, 1)
    else:
        optimizer = trainable * per_param
    step = trainable * step_per_param
    reference = P * run.e if (run.grpo and run.beta > 0 and run.finetune == "full") else 0

    n, mode = run.gpus, run.distributed
    gathered = 0
    if n > 1 and mode == "ddp":
        grads *= 2  # DDP's gradient buckets hold a second copy
    elif n > 1 and mode in ("fsdp", "deepspeed-zero3"):
        gathered = 2 * P / max(shape.num_layers, 1) * run.e  # this layer and the prefetched next, unsharded in the compute dtype
        weights, copies, adapter, grads, optimizer, step, reference = (x / n for x in (weights, copies, adapter, grads, optimizer, step, reference))
        weights += gathered
    elif n > 1 and mode == "deepspeed-zero2":
        grads, optimizer, step = grads / n, optimizer / n, step / n

    parts = _activation_parts(shape, run, trained, run.ckpt)
    acts = sum(parts.values())
    other = sum(_activation_parts(shape, run, trained, not run.ckpt).values())
    prompt_len = int(cfg["grpo"]["max_prompt_length"]) if run.grpo else 0
    generation = _generation(shape, run, prompt_len)
    components = {
        "weights": int(weights),
        "weight_copies": int(copies),
        "reference_model": int(reference),
        "adapter": int(adapter),
        "gradients": int(grads),
        "optimizer": int(optimizer),
        "activations": int(acts),
        "optimizer_step": int(step),
        "generation": int(generation),
    }
    static = weights + reference + adapter + grads + optimizer
    allocated = static + max(acts + copies, step, generation)
    fixed = CUDA_OVERHEAD if device == "gpu" else CPU_OVERHEAD
    components["overhead"] = int(fixed + FRAGMENTATION * allocated)
    assumptions = {
        "source": shape.source,
        "params": P,
        "trainable_params": int(trainable),
        "trainable_dtype": "bf16" if pbytes == 2 else "fp32",
        "finetune": run.finetune,
        "precision": precision,
        "weights_dtype": wdtype,
        "gradient_checkpointing": run.ckpt,
        "batch": run.batch,
        "sequences": run.seqs,
        "seq_len": run.seq_len,
        "tokens": run.seqs * run.seq_len,
        "packing": run.packing,
        "optimizer": run.optim,
        "optimizer_bytes_per_param": round(per_param, 3),
        "lora_r": run.lora_r if run.finetune != "full" else None,
        "gpus": n,
        "distributed": mode,
        "generation_sequences": run.gen_sequences,
        "overhead_fixed_bytes": fixed,
        "fragmentation": FRAGMENTATION,
    }
    return components, int(other), parts, assumptions, notes


def _total(components: dict[str, int]) -> int:
    c = components
    static = c["weights"] + c["reference_model"] + c["adapter"] + c["gradients"] + c["optimizer"]
    return static + max(c["activations"] + c["weight_copies"], c["optimizer_step"], c["generation"]) + c["overhead"]


# ---- the estimate --------------------------------------------------------------------------


def apply_overrides(cfg: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of cfg with dotted keys set, e.g. {"train.gradient_checkpointing": True}."""
    out = copy.deepcopy(cfg)
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        out.setdefault(section, {})[key] = value
    return out


def estimate(cfg: dict[str, Any], gpus: list[dict[str, Any]] | None = None, ram_bytes: int | None = None, search_fix: bool = True) -> Estimate:
    """The memory estimate for a resolved config.

    gpus: the visible GPUs as [{name, total_mb, bf16}] (default: NVML's, [] without a driver).
    ram_bytes: the RAM a CPU run is compared with (default: this machine's).
    search_fix: look for the cheapest change when it is tight or does not fit.
    """
    visible = visible_gpus() if gpus is None else list(gpus)
    name = cfg["model"]["name_or_path"]
    try:
        shape = shapes.model_shape(name, cfg["model"].get("revision"))
    except shapes.ShapeUnknown as exc:
        return Estimate(model=name, verdict="unknown", reason=str(exc))
    want = int((cfg.get("run") or {}).get("gpus", 1) or 1)
    used = visible[:want]
    needs_cuda = cfg["model"]["finetune"] == "qlora" or cfg["model"]["dtype"] == "fp16"
    device = "gpu" if (used or needs_cuda) else "cpu"
    components, other, parts, assumptions, notes = _compute(cfg, shape, used, device)
    total = _total(components)
    if device == "cpu" and want > 1:
        total *= want
        notes.append(f"{want} CPU processes, each holding its own share: the total is for all of them")
    if used and len(used) < want:
        notes.append(f"run.gpus={want} but {len(visible)} GPU(s) visible")
    if device == "cpu":
        capacity = ram_bytes if ram_bytes is not None else gpu.system_ram()
    else:
        capacity = int(min(g["total_mb"] for g in used) * 2**20) if used else None
    if capacity is None:
        verdict = "no_gpu"
    elif total > capacity:
        verdict = "will_not_fit"
    elif total > TIGHT * capacity:
        verdict = "tight"
    else:
        verdict = "fits"
    est = Estimate(
        model=name, verdict=verdict, device=device, gpus=used, capacity_bytes=capacity, components=components,
        activations_other=other, activation_parts=parts, total_bytes=total, assumptions=assumptions, notes=notes,
    )
    if search_fix and est.warn:
        est.fix = find_fix(cfg, est, visible, ram_bytes)
    return est


def _candidates(cfg: dict[str, Any], est: Estimate, visible: list[dict[str, Any]]) -> list[list[tuple[str, dict[str, Any], str]]]:
    """Groups of (words, overrides, command-line text), cheapest for the result first; within a group, mildest first."""
    t, m, a = cfg["train"], cfg["model"], est.assumptions
    on_gpu = est.device == "gpu"
    groups: list[list[tuple[str, dict[str, Any], str]]] = []
    if not a["gradient_checkpointing"]:
        groups.append([("turn on gradient checkpointing", {"train.gradient_checkpointing": True}, "--set train.gradient_checkpointing=true")])
    b, ga = int(t["per_device_train_batch_size"]), int(t["gradient_accumulation_steps"])
    splits = []
    for smaller in (d for d in range(b - 1, 0, -1) if b % d == 0):  # divisors keep the effective batch exact
        acc = ga * b // smaller
        splits.append((f"batch {smaller} x grad accum {acc} (same effective batch)",
                       {"train.per_device_train_batch_size": smaller, "train.gradient_accumulation_steps": acc},
                       f"--batch-size {smaller} --grad-accum {acc}"))
    if splits:
        groups.append(splits)
    if on_gpu and a["optimizer_bytes_per_param"] > 2 and est.components["optimizer"] > 0.02 * est.total_bytes:
        groups.append([("an 8-bit optimizer (adamw_8bit, needs bitsandbytes)", {"train.optim": "adamw_8bit"}, "--set train.optim=adamw_8bit")])
    if m["finetune"] == "full":
        groups.append([("LoRA instead of full fine-tuning", {"model.finetune": "lora"}, "--set model.finetune=lora")])
    if on_gpu and m["finetune"] != "qlora":
        groups.append([("QLoRA (4-bit base model) instead of " + ("LoRA" if m["finetune"] == "lora" else "full fine-tuning"),
                        {"model.finetune": "qlora"}, "--qlora")])
    if a["generation_sequences"]:
        length = int(cfg["grpo"]["max_completion_length"])
        key, flag, floor = "grpo.max_completion_length", "--set grpo.max_completion_length=", 64
    else:
        length, key, flag, floor = int(t["max_length"]), "train.max_length", "--max-length ", 256
    shorter = []
    n = length // 2
    while n >= floor:
        shorter.append((f"{key.split('.')[1]} {n} (longer examples are cut)", {key: n}, f"{flag}{n}"))
        n //= 2
    if shorter:
        groups.append(shorter)
    more = [k for k in (2, 4, 8, 16) if a["gpus"] < k <= len(visible)]
    if on_gpu and more:
        groups.append([(f"{k} GPUs with fsdp", {"run.gpus": k, "run.distributed": "fsdp"}, f"--gpus {k} --distributed fsdp") for k in more])
    return groups


def find_fix(cfg: dict[str, Any], est: Estimate, visible: list[dict[str, Any]], ram_bytes: int | None = None) -> Fix | None:
    """The cheapest change that brings the estimate under 90% of the memory; combined changes when no single one does."""

    def trial(steps: list[tuple[str, dict[str, Any], str]]) -> Estimate:
        overrides = {k: v for _, o, _ in steps for k, v in o.items()}
        return estimate(apply_overrides(cfg, overrides), gpus=visible, ram_bytes=ram_bytes, search_fix=False)

    def fits(e: Estimate) -> bool:
        return e.known and e.capacity_bytes is not None and e.total_bytes <= TIGHT * e.capacity_bytes

    def as_fix(steps: list[tuple[str, dict[str, Any], str]], e: Estimate) -> Fix:
        overrides = {k: v for _, o, _ in steps for k, v in o.items()}
        return Fix(" + ".join(t for t, _, _ in steps), overrides, " ".join(c for _, _, c in steps), e.total_bytes)

    groups = _candidates(cfg, est, visible)
    for group in groups:
        for step in group:
            e = trial([step])
            if fits(e):
                return as_fix([step], e)
    # No single change: add them up in the same order (a later step replaces one that sets the same key),
    # the mildest of each group that is enough, else its strongest; then drop the steps not needed.
    steps: list[tuple[str, dict[str, Any], str]] = []
    for group in groups:
        for i, step in enumerate(group):
            tried = [s for s in steps if not set(s[1]) & set(step[1])] + [step]
            e = trial(tried)
            if fits(e) or i == len(group) - 1:
                steps = tried
                break
        if fits(e):
            for step in reversed(list(steps)):  # the costliest first: keep the cheap changes that suffice
                fewer = [s for s in steps if s is not step]
                if fewer and fits(trial(fewer)):
                    steps = fewer
            return as_fix(steps, trial(steps))
    return None
