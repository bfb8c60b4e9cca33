"""The ``transformers`` models that use weight norm natively, built from small configs with random weights (never
downloaded), and three vision models (ViT, ConvNeXt, ResNet) converted with ``wninit.weight_norm(...,
remove_batchnorm=True)``: the part of the zoo nobody here wrote.

Every model of transformers 5.23 whose code applies weight norm is here but the one in ``NOT_BUILT``:
Higgs-Audio-v2's tokenizer imports torchaudio, which does not install next to the CPU torch wheel (its layers are
X-Codec's, ``hf_xcodec``, plus a resampler). SeamlessM4T's conformer positional convolution is weight-normed but
built by none of its models; its unit vocoders are here. Codecs' codebooks are zeros until trained or loaded (their decoders would see a zero input): they get a
seeded Gaussian draw.

``HF_ZOO[name] = build``; ``build()`` returns ``(model, example_inputs)``, the inputs the keyword arguments of
the model's forward (``input_values=``, ``spectrogram=``, ...). ``transformers`` is a test extra: importing
this module without it raises ImportError, and the tests that use it skip by ``pytest.importorskip``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

import transformers as tf
from transformers.models.seamless_m4t_v2 import modeling_seamless_m4t_v2 as _v2

_G = torch.Generator().manual_seed(1)


def _audio(n: int = 2, length: int = 1600) -> torch.Tensor:
    return torch.randn(n, length, generator=_G)


def _weight_normed(model: nn.Module) -> nn.Module:
    """The model with its own weight norm applied: models that keep it off until asked (vocoders' and codecs'
    training mode) get ``apply_weight_norm``, the one the authors wrote, on each outermost module that has one
    (the model, or its convolutions' wrappers: Mimi) and where it wraps no layer twice (a model whose weight norm
    is on from construction)."""
    done: list[str] = []
    for name, m in model.named_modules():
        if any(d == "" or name.startswith(d + ".") for d in done):
            continue
        if hasattr(m, "apply_weight_norm") and _wraps_once(m):
            m.apply_weight_norm()
            done.append(name)
    return model


def _wraps_once(module: nn.Module) -> bool:
    trial = copy.deepcopy(module)
    try:
        trial.apply_weight_norm()
    except RuntimeError:  # the legacy API refuses a second weight norm on a layer
        return False
    return not any(len(m.parametrizations["weight"]) > 1 for m in trial.modules()
                   if hasattr(m, "parametrizations") and "weight" in m.parametrizations)


def _random_codebooks(model: nn.Module) -> nn.Module:
    for name, buf in model.named_buffers():
        if name.endswith(("codebook.embed", "codebook.embed_sum")) and not buf.any():
            buf.normal_(generator=_G)
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


_DAC = dict(encoder_hidden_size=8, downsampling_ratios=[2, 4], decoder_hidden_size=32, upsampling_ratios=[4, 2],
            hidden_size=32, n_codebooks=2, codebook_size=16, codebook_dim=4)


def _dac():
    torch.manual_seed(0)
    cfg = tf.DacConfig(**_DAC)
    return _weight_normed(tf.DacModel(cfg).eval()), {"input_values": _audio(2, 512).unsqueeze(1)}


def _encodec():
    torch.manual_seed(0)
    cfg = tf.EncodecConfig(num_filters=4, upsampling_ratios=[4, 2], codebook_size=16, hidden_size=16,
                           num_lstm_layers=1, norm_type="weight_norm", target_bandwidths=[4.0], sampling_rate=2000)
    return _random_codebooks(tf.EncodecModel(cfg).eval()), {"input_values": _audio(2, 512).unsqueeze(1)}


_SEANET = dict(hidden_size=16, num_filters=4, upsampling_ratios=[4, 2], upsample_groups=16, num_hidden_layers=1,
               intermediate_size=32, num_attention_heads=2, num_key_value_heads=2, head_dim=8, sliding_window=16,
               max_position_embeddings=64)


def _mimi():
    torch.manual_seed(0)
    cfg = tf.MimiConfig(**_SEANET, codebook_size=16, codebook_dim=8, num_quantizers=2,
                        vector_quantization_hidden_dimension=8)
    model = _random_codebooks(_weight_normed(tf.MimiModel(cfg).eval()))
    return model, {"input_values": _audio(2, 512).unsqueeze(1)}


def _pocket_tts():
    torch.manual_seed(0)
    cfg = tf.PocketTTSAudioTokenizerConfig(**_SEANET, latent_dim=8, latent_stride=2)
    return _weight_normed(tf.PocketTTSAudioTokenizerModel(cfg).eval()), {"input_values": _audio(2, 512).unsqueeze(1)}


def _xcodec():
    """X-Codec: DAC's encoder and decoder (its own weight norm) around a HuBERT (a weight-normed positional conv)."""
    torch.manual_seed(0)
    cfg = tf.XcodecConfig(acoustic_model_config={**_DAC, "downsampling_ratios": [4, 5], "upsampling_ratios": [5, 4],
                                                 "hidden_size": 16, "model_type": "dac"},
                          semantic_model_config={**_SPEECH, "model_type": "hubert"}, codebook_size=16,
                          target_bandwidths=[8.0])
    return _random_codebooks(_weight_normed(tf.XcodecModel(cfg).eval())), {"input_values": _audio(2, 800).unsqueeze(1)}


def _univnet():
    torch.manual_seed(0)
    cfg = tf.UnivNetConfig(model_in_channels=8, model_hidden_channels=8, num_mel_bins=16, resblock_kernel_sizes=[3, 3],
                           resblock_stride_sizes=[4, 4], resblock_dilation_sizes=[[1, 3], [1, 3]],
                           kernel_predictor_num_blocks=1, kernel_predictor_hidden_channels=8)
    return _weight_normed(tf.UnivNetModel(cfg).eval()), {"input_features": torch.randn(2, 12, 16, generator=_G),
                                                         "noise_sequence": torch.randn(2, 12, 8, generator=_G)}


def _vits():
    """VITS in inference: text encoder, stochastic duration predictor, the prior's flows (weight-normed WaveNets) and
    the HiFi-GAN decoder; the posterior encoder's WaveNet runs only in training (wninit names it, at the default)."""
    torch.manual_seed(0)
    cfg = tf.VitsConfig(vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
                        flow_size=8, spectrogram_bins=9, upsample_initial_channel=16, upsample_rates=[4, 4],
                        upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3, 7],
                        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], duration_predictor_filter_channels=16,
                        prior_encoder_num_flows=2, prior_encoder_num_wavenet_layers=2,
                        posterior_encoder_num_wavenet_layers=2, depth_separable_num_layers=2,
                        duration_predictor_num_flows=2)
    return _weight_normed(tf.VitsModel(cfg).eval()), {"input_ids": torch.randint(1, 16, (2, 10), generator=_G)}


def _seamless_code_hifigan(model_cls, config_cls, speaker_key: str, **extra):
    """SeamlessM4T(v2)'s unit vocoder: unit, speaker and language embeddings, a duration predictor, a HiFi-GAN."""
    def build():
        torch.manual_seed(0)
        cfg = config_cls(upsample_initial_channel=32, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
                         resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
                         unit_hifi_gan_vocab_size=32, unit_embed_dim=16, lang_embed_dim=4, spkr_embed_dim=4,
                         vocoder_num_langs=2, vocoder_num_spkrs=2, **extra)
        x = {"input_ids": torch.randint(0, 32, (2, 12), generator=_G), speaker_key: torch.zeros(2, 1, dtype=torch.long),
             "lang_id": torch.ones(2, 1, dtype=torch.long)}
        return _weight_normed(model_cls(cfg).eval()), x
    return build


def _converted(model_cls, config_cls, **config):
    """A vision model of transformers converted by the user's one call, BatchNorm out (the "any model" path)."""
    def build():
        import wninit

        torch.manual_seed(0)
        model = wninit.weight_norm(model_cls(config_cls(**config)).eval(), remove_batchnorm=True)
        return model, {"pixel_values": torch.randn(2, 3, 32, 32, generator=_G)}
    return build


# transformers' model folders that apply weight norm and are not built here, and why.
NOT_BUILT = {"higgs_audio_v2_tokenizer": "imports torchaudio, which does not install next to the CPU torch wheel"}

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
    "hf_fastspeech2_conformer_hifigan": _hifigan(tf.FastSpeech2ConformerHifiGan, tf.FastSpeech2ConformerHifiGanConfig,
                                       "spectrogram", 16),
    "hf_dac": _dac,
    "hf_encodec": _encodec,
    "hf_mimi": _mimi,
    "hf_pocket_tts_audio_tokenizer": _pocket_tts,
    "hf_xcodec": _xcodec,
    "hf_univnet": _univnet,
    "hf_vits": _vits,
    "hf_seamless_m4t_code_hifigan": _seamless_code_hifigan(tf.SeamlessM4TCodeHifiGan, tf.SeamlessM4TConfig, "spkr_id"),
    "hf_seamless_m4t_v2_code_hifigan": _seamless_code_hifigan(
        _v2.SeamlessM4Tv2CodeHifiGan, tf.SeamlessM4Tv2Config, "speaker_id", t2u_variance_predictor_embed_dim=16,
        t2u_variance_predictor_hidden_dim=16),
    "hf_vit_converted": _converted(tf.ViTModel, tf.ViTConfig, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                   intermediate_size=64, image_size=32, patch_size=4),
    "hf_convnext_converted": _converted(tf.ConvNextModel, tf.ConvNextConfig, hidden_sizes=[16, 32], depths=[2, 2],
                                        num_stages=2, image_size=32),
    "hf_resnet_converted": _converted(tf.ResNetModel, tf.ResNetConfig, embedding_size=16, hidden_sizes=[16, 32],
                                      depths=[2, 2], layer_type="basic"),
}
