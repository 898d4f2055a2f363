"""A tiny chat Llama for the fast LLM tests: a real byte-level BPE tokenizer, a ChatML template, and
a Llama small enough to train in seconds on 2 cores.

The tokenizer is the same kind as SmolLM2's (GPT-2 byte-level BPE, `<|im_start|>`/`<|im_end|>`
special tokens, `<|im_end|>` as end of turn), trained on the given texts, so that every tool in the
chain (transformers, the GGUF writer, ONNX Runtime GenAI's tokenizer) meets what it meets with the
real model. `train_tiny_chat_llama` fits it on a handful of (question, answer) pairs with the loss on
the assistant tokens, so that greedy decoding reproduces those answers and then ends its turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

# The ChatML template of SmolLM2 without its default system prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
END_OF_TURN = "<|im_end|>"


def build_tiny_chat_llama(
    directory: Path,
    texts: Iterable[str],
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a random tiny Llama with a BPE tokenizer trained on `texts`; return the directory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token=END_OF_TURN,
        pad_token=END_OF_TURN,
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def chat_training_ids(tokenizer, question: str, answer: str) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    """Token ids of one templated exchange and its labels: the assistant's answer and end of turn."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = [*tokenizer(answer, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def train_tiny_chat_llama(
    directory: Path, pairs: Sequence[tuple[str, str]], steps: int = 300, seed: int = 0
) -> list[float]:
    """Fit the model in `directory` on (question, answer) pairs, in place; return the loss curve."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    examples = [chat_training_ids(tokenizer, question, answer) for question, answer in pairs]
    width = max(len(ids) for ids, _ in examples)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in examples])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in examples])
    attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in examples])
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    # One thread: a model this small trains faster without contention on the shared 2 cores.
    torch.set_num_threads(1)
    losses = []
    try:
        model.train()
        for _ in range(steps):
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(directory)
    return losses


def greedy_answer(model_dir: Path, question: str, max_new_tokens: int = 24) -> str:
    """PyTorch's greedy answer to one user turn, rendered with the model's chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.inference_mode():
        output = model.generate(ids, generation_config=config)
    return tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)
