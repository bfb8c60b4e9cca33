"""The ``transformers`` models that use weight norm natively, built from small configs with random weights (never
downloaded), and three vision models (ViT, ConvNeXt, ResNet) converted with ``wninit.weight_norm(...,
remove_batchnorm=True)``: the part of the zoo nobody here wrote.

Not here yet, though they ship weight norm: Mimi, UnivNet, VITS, SeamlessM4T(v2)'s code HiFi-GAN, X-Codec,
Higgs-Audio-v2's and Pocket-TTS's tokenizers (their small configs did not build or run in the time given).

``HF_ZOO[name] = build``; ``build()`` returns ``(model, example_inputs)``, the inputs the keyword arguments of
the model's forward (``input_values=``, ``spectrogram=``, ...). ``transformers`` is a test extra: importing
this module without it raises ImportError, and the tests that use it skip by ``pytest.importorskip``.
"""
from __future__ import annotations

import torch
from torch import nn

import transformers as tf

_G = torch.Generator().manual_seed(1)


def _audio(n: int = 2, length: int = 1600) -> torch.Tensor:
    return torch.randn(n, length, generator=_G)


def _weight_normed(model: nn.Module) -> nn.Module:
    """The model with its own weight norm applied: models that keep it off until asked (vocoders' training
    mode) get ``apply_weight_norm``, the one the authors wrote."""
    from wninit.weightnorm.access import is_weight_normed

    if not any(is_weight_normed(m) for m in model.modules()) and hasattr(model, "apply_weight_norm"):
        model.apply_weight_norm()
    return model


_SPEECH = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
               conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
               num_conv_pos_embedding_groups=4, vocab_size=8)


def _speech(model_cls, config_cls, **extra):
    def build():
        torch.manual_seed(0)
        return _weight_normed(model_cls(config_cls(**{**_SPEECH, **extra})).eval()), {"input_values": _audio()}
    return build


def _hifigan(model_cls, config_cls, in_key: str, channels: int, **extra):
    def build():
        torch.manual_seed(0)
        cfg = config_cls(model_in_dim=channels, upsample_initial_channel=32, upsample_rates=[4, 4],
                         upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3, 7], **extra)
        model = _weight_normed(model_cls(cfg).eval())
        return model, {in_key: torch.randn(2, 12, channels, generator=_G)}
    return build


def _dac():
    torch.manual_seed(0)
    cfg = tf.DacConfig(encoder_hidden_size=8, downsampling_ratios=[2, 4], decoder_hidden_size=32,
                       upsampling_ratios=[4, 2], hidden_size=32, n_codebooks=2, codebook_size=16, codebook_dim=4)
    return _weight_normed(tf.DacModel(cfg).eval()), {"input_values": _audio(2, 512).unsqueeze(1)}


def _encodec():
    torch.manual_seed(0)
    cfg = tf.EncodecConfig(num_filters=4, upsampling_ratios=[4, 2], codebook_size=16, hidden_size=16,
                           num_lstm_layers=1, norm_type="weight_norm", target_bandwidths=[4.0], sampling_rate=2000)
    model = tf.EncodecModel(cfg).eval()
    for name, buf in model.named_buffers():  # NOTE: codebooks are zeros until trained or loaded: a random draw
        if name.endswith("codebook.embed"):
            buf.normal_(generator=_G)
    return model, {"input_values": _audio(2, 512).unsqueeze(1)}


def _converted(model_cls, config_cls, **config):
    """A vision model of transformers converted by the user's one call, BatchNorm out (the "any model" path)."""
    def build():
        import wninit

        torch.manual_seed(0)
        model = wninit.weight_norm(model_cls(config_cls(**config)).eval(), remove_batchnorm=True)
        return model, {"pixel_values": torch.randn(2, 3, 32, 32, generator=_G)}
    return build


HF_ZOO = {
    "hf_wav2vec2": _speech(tf.Wav2Vec2Model, tf.Wav2Vec2Config),
    "hf_hubert": _speech(tf.HubertModel, tf.HubertConfig),
    "hf_wavlm": _speech(tf.WavLMModel, tf.WavLMConfig),
    "hf_unispeech": _speech(tf.UniSpeechModel, tf.UniSpeechConfig),
    "hf_unispeech_sat": _speech(tf.UniSpeechSatModel, tf.UniSpeechSatConfig),
    "hf_sew": _speech(tf.SEWModel, tf.SEWConfig, squeeze_factor=2),
    "hf_wav2vec2_conformer": _speech(tf.Wav2Vec2ConformerModel, tf.Wav2Vec2ConformerConfig,
                                     position_embeddings_type=None),
    "hf_sew_d": _speech(tf.SEWDModel, tf.SEWDConfig, squeeze_factor=2, position_buckets=16, max_position_embeddings=64),
    "hf_speecht5_hifigan": _hifigan(tf.SpeechT5HifiGan, tf.SpeechT5HifiGanConfig, "spectrogram", 16),
    "hf_fastspeech2_hifigan": _hifigan(tf.FastSpeech2ConformerHifiGan, tf.FastSpeech2ConformerHifiGanConfig,
                                       "spectrogram", 16),
    "hf_dac": _dac,
    "hf_encodec": _encodec,
    "hf_vit_converted": _converted(tf.ViTModel, tf.ViTConfig, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                   intermediate_size=64, image_size=32, patch_size=4),
    "hf_convnext_converted": _converted(tf.ConvNextModel, tf.ConvNextConfig, hidden_sizes=[16, 32], depths=[2, 2],
                                        num_stages=2, image_size=32),
    "hf_resnet_converted": _converted(tf.ResNetModel, tf.ResNetConfig, embedding_size=16, hidden_sizes=[16, 32],
                                      depths=[2, 2], layer_type="basic"),
}
