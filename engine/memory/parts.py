"""The memory formula: the bytes of each part of a run (weights, gradients, optimizer states,
activations, generation) per GPU, from the config and the model's shape.

Standard library only: `cockpit run` prints it before it starts the engine, the TUI's form redraws it
at every change, and the engine records it as the `estimate` event (compared with the measured peak
at the end of the run). Model sizes come from engine/model_shape.py (headers, never weights).

The formula, per GPU, in bytes. P: the model's parameters; T: the trainable ones; e: bytes of the
compute dtype (2 in bf16/fp16, 4 in fp32); r: bytes of the residual stream between layers (4 where
the embeddings are fp32: full fine-tuning, QLoRA, fp32 runs; else e); h, i, L: hidden size,
intermediate size (x experts per token for MoE), layers; q = heads x head_dim; N tokens per micro
batch = batch x max_length (SFT pads to the longest example, so this is the bound a long batch hits).

- weights, as engine/model/load.py loads them: LoRA P x e; full fine-tuning P x 4 (fp32 masters under
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

import re
from dataclasses import dataclass
from typing import Any

from engine.model import shape as shapes

GIB = 2**30
CUDA_OVERHEAD = GIB // 2  # CUDA context + cuBLAS/cuDNN workspaces, as NVML shows them on an idle process
CPU_OVERHEAD = int(0.6 * GIB)  # torch, transformers, trl and datasets imported: 0.43 GiB RSS measured, plus the data
FRAGMENTATION = 0.05  # the caching allocator's reserved-but-unused memory, a share of what is allocated
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit weights, 8-bit absmax per 64, fp32 absmax per 256 of those
LOSS_TILE = (4096, 32768)  # TRL's fused LM head: tokens x vocabulary columns per tile



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


def compute_parts(
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


def total_bytes(components: dict[str, int]) -> int:
    c = components
    static = c["weights"] + c["reference_model"] + c["adapter"] + c["gradients"] + c["optimizer"]
    return static + max(c["activations"] + c["weight_copies"], c["optimizer_step"], c["generation"]) + c["overhead"]


# ---- the estimate --------------------------------------------------------------------------


