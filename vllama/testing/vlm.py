"""A small vision-language test model, made here (no hub access needed).

:func:`smolvlm_safetensors` builds an Idefics3 model (SmolVLM's architecture) whose language
model is SmolLM2-135M-Instruct with its real weights, and whose vision tower and connector are
small and freshly initialised from a fixed seed. The text side answers as SmolLM2 does; the
image side is random, so the model cannot describe an image, but every image does reach it:
the prompt grows by the image's tokens and different images give different outputs. It tests
the plumbing of images, not the quality of a vision model.

The tokenizer gains Idefics3's image tokens, and the chat template is SmolLM2's ChatML with
an ``<image>`` placeholder for each image part of a message. The image processor is the PIL
one (no torchvision needed). Made once and cached next to the other test models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vllama.testing.hf_models import cache_dir, cached_directory, smollm2_safetensors

#: The vision tower's input side, in pixels, and its patch size: each image becomes
#: (IMAGE_SIZE / PATCH_SIZE)^2 / SCALE_FACTOR^2 = 16 image tokens.
IMAGE_SIZE = 128
PATCH_SIZE = 16
SCALE_FACTOR = 2
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2
#: A small vision tower (SmolVLM's is a 93M-parameter SigLIP): quick to load, random all the same.
VISION_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH_SIZE,
}
#: The seed the vision tower and the connector are initialised from.
SEED = 1234

#: SmolLM2's ChatML template, with each image part of a message rendered as ``<image>``.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: The tokens Idefics3's processor and vLLM's Idefics3 support look up in the vocabulary.
IMAGE_TOKENS = [
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
]


def smolvlm_safetensors() -> Path:
    """The test vision-language model as a safetensors directory, with its tokenizer, image
    processor and chat template (built once: a few seconds, about 300 MB)."""
    return cached_directory(cache_dir() / "smolvlm-smollm2-135m-random-vision", lambda work: _build(smollm2_safetensors(), work))


def _build(text_dir: Path, out: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(str(text_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": IMAGE_TOKENS})
    text_config: dict[str, Any] = json.loads((text_dir / "config.json").read_text())
    text_config["vocab_size"] = len(tokenizer)
    for key in ("architectures", "_model_name_or_path", "transformers_version", "dtype"):
        text_config.pop(key, None)
    config = Idefics3Config(
        text_config=text_config,
        vision_config=VISION_CONFIG,
        scale_factor=SCALE_FACTOR,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=text_config.get("pad_token_id"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(SEED)
    model = Idefics3ForConditionalGeneration(config).to(torch.bfloat16)
    text = load_file(str(text_dir / "model.safetensors"))
    embed = text.pop("model.embed_tokens.weight")
    grown = torch.cat([embed, embed.mean(0, keepdim=True).expand(len(tokenizer) - embed.shape[0], -1)])
    state = {f"model.text_model.{k.removeprefix('model.')}": v for k, v in text.items() if k.startswith("model.")}
    state["model.text_model.embed_tokens.weight"] = grown
    missing, unexpected = model.load_state_dict(state, strict=False)
    text_missing = [k for k in missing if k.startswith("model.text_model.")]
    if text_missing or unexpected:
        raise RuntimeError(f"text weights did not map: missing {text_missing[:3]}, unexpected {unexpected[:3]}")
    model.tie_weights()
    model.config.dtype = torch.bfloat16
    model.save_pretrained(str(out))
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE}
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=IMAGE_SEQ_LEN, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(str(out))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
