"""Hugging Face transformers audio models from small configs (nothing downloaded): a Wav2Vec2
classifier on raw 16 kHz waveforms (conv feature encoder + transformer) and Whisper's encoder
with a classification head on log-mel features. Trained for a few seconds on tones made in code."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import data
from .hf_text import _Logits
from .spec import Entry, ce, fit_torch, inp, out

SAMPLES, MELS, FRAMES = 1600, 16, 64


def wav2vec2() -> Any:
    import transformers as t
    cfg = t.Wav2Vec2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                           conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 8),
                           num_feat_extract_layers=3, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                           num_labels=data.CLASSES, classifier_proj_size=32, vocab_size=32)
    return _Logits.wrap(t.Wav2Vec2ForSequenceClassification(cfg), ("input_values",))


def whisper_encoder() -> Any:
    import transformers as t
    cfg = t.WhisperConfig(num_mel_bins=MELS, d_model=64, encoder_layers=2, encoder_attention_heads=4,
                          encoder_ffn_dim=128, max_source_positions=FRAMES // 2, decoder_layers=1,
                          decoder_attention_heads=4, decoder_ffn_dim=64, vocab_size=128, num_labels=data.CLASSES,
                          classifier_proj_size=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                          decoder_start_token_id=1)
    return _Logits.wrap(t.WhisperForAudioClassification(cfg), ("input_features",))


def wave_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.audio(n, seed, length=SAMPLES)
    return {"input_values": x}, y


def mel_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    x, y = data.log_mel(n, seed, mels=MELS, frames=FRAMES)
    return {"input_features": x}, y


def train(model: Any, entry: Entry) -> None:
    fit_torch(model, entry, ce, steps=80, lr=2e-3)


LOGITS = (out("logits", True, ["batch", data.CLASSES]),)

ENTRIES = [
    Entry("wav2vec2-cls", "transformers-audio", "torch", "Wav2Vec2ForSequenceClassification (3 conv layers, "
          "2 transformer layers; 0.1 s of 16 kHz audio)", (inp("input_values", "float32", ["batch", SAMPLES]),),
          LOGITS, wave_data, wav2vec2, train, tags=("transformer", "audio")),
    Entry("whisper-encoder-cls", "transformers-audio", "torch", "WhisperForAudioClassification: Whisper's "
          "encoder (2 layers) + a classifier on 16x64 log-mel features",
          (inp("input_features", "float32", ["batch", MELS, FRAMES]),), LOGITS, mel_data, whisper_encoder, train,
          tags=("transformer", "audio")),
]
