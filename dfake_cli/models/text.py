"""The empty-prompt context: SD-1.5's frozen CLIP text encoder applied to "", computed once.

SD-1.5 conditions its UNet on the last hidden state of the text tower of openai/clip-vit-large-patch14 for
the prompt. DiffusionFake always uses the empty prompt, whose token ids are fixed: the start token 49406,
then 76 end/padding tokens 49407 (CLIP pads to 77 with the end token). So no tokenizer files are needed,
only the text encoder's weights, which come from:

- a diffusers folder's ``text_encoder/`` (``CLIPTextModel.from_pretrained``, offline),
- a single SD-1.5 file's ``cond_stage_model.transformer.*`` tensors, loaded into a model built from the
  packaged config (configs/sd15/text_encoder: hidden 768, 12 layers, 12 heads, quick_gelu),
- the tiny SD's packaged config with weights from a fixed seed (configs/tiny/text_encoder), so the demo and
  the tests run the same code path as real weights.

Without text-encoder weights there is no faithful context; `ZERO_CONTEXT` (all zeros) exists only as an
explicit ablation: with it every cross-attention of the frozen UNet outputs its bias, whatever the input.
"""

from __future__ import annotations

from pathlib import Path

import torch

BOS_ID, EOS_ID = 49406, 49407
TEXT_TOKENS = 77
LDM_TEXT_PREFIX = "cond_stage_model.transformer."

# Where a run's context came from (recorded in config.json, checkpoints and report protocols).
CONTEXT_FOLDER = "clip text_encoder/ (diffusers folder)"
CONTEXT_SINGLE_FILE = "clip cond_stage_model.transformer (single file)"
CONTEXT_TINY = "tiny seeded clip text encoder"
ZERO_CONTEXT = "zeros (ablation)"


def empty_prompt_ids() -> torch.Tensor:
    """(1, 77) int64: what CLIP's tokenizer gives for "" padded to 77 tokens."""
    return torch.tensor([[BOS_ID] + [EOS_ID] * (TEXT_TOKENS - 1)], dtype=torch.long)


def build_text_encoder(config_dir: Path):
    """A CLIPTextModel from a packaged config (random weights until loaded); eval mode."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig.from_pretrained(str(config_dir), local_files_only=True)
    return CLIPTextModel(config).eval()


def load_folder_text_encoder(folder: Path):
    """The diffusers folder's text_encoder/ (None when the folder has none)."""
    sub = folder / "text_encoder"
    if not sub.is_dir():
        return None
    from transformers import CLIPTextModel

    return CLIPTextModel.from_pretrained(str(sub), local_files_only=True, torch_dtype=torch.float32).eval()


@torch.no_grad()
def encode_empty_prompt(encoder) -> torch.Tensor:
    """(1, 77, hidden) float32: the encoder's last hidden state for the empty prompt (as SD-1.5 uses it)."""
    param = next(encoder.parameters())
    ids = empty_prompt_ids().to(param.device)
    return encoder(input_ids=ids).last_hidden_state.float().cpu()


def _model_keys(encoder) -> set[str]:
    return set(encoder.state_dict())


def ldm_text_state(checkpoint: dict, encoder) -> tuple[dict, list[str]]:
    """Map a single file's ``cond_stage_model.transformer.*`` tensors onto `encoder`'s parameter names.

    Returns (state for encoder.load_state_dict, the checkpoint keys consumed). The LDM layout names tensors
    ``cond_stage_model.transformer.text_model.<name>``; recent transformers name them ``<name>`` (older ones
    ``text_model.<name>``): both are accepted. ``embeddings.position_ids`` (a constant arange buffer that
    some files carry) is consumed without loading. Keys that match nothing are left unconsumed for the
    caller to report.
    """
    wanted = _model_keys(encoder)
    state, consumed = {}, []
    for key, value in checkpoint.items():
        if not key.startswith(LDM_TEXT_PREFIX):
            continue
        name = key[len(LDM_TEXT_PREFIX):]
        candidates = (name, name.removeprefix("text_model."), "text_model." + name)
        hit = next((c for c in candidates if c in wanted), None)
        if hit is not None:
            state[hit] = value
            consumed.append(key)
        elif name.endswith("embeddings.position_ids"):
            consumed.append(key)
    return state, consumed


def ldm_text_keys(encoder, prefix: str = LDM_TEXT_PREFIX) -> dict[str, str]:
    """encoder parameter name -> its LDM single-file key (the inverse of `ldm_text_state`)."""
    return {k: prefix + "text_model." + k.removeprefix("text_model.") for k in _model_keys(encoder)}
