"""Rooms and microphones for training audio (training/augment.py)."""

import numpy as np
import pytest

from training.augment import Channel, ChannelConfig, room_impulse_response

pytest.importorskip("pyroomacoustics")
pytest.importorskip("audiomentations")


def test_room_response_follows_the_asked_reverberation_time():
    """Sabine's formula sets the walls; the measured decay of a given room can differ from
    it by tens of percent, but rooms asked to ring longer do."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(0)
    measured = {rt60: np.median([pra.experimental.measure_rt60(room_impulse_response(rt60, rng), fs=16000)
                                 for _ in range(5)]) for rt60 in (0.2, 0.8)}
    assert 0.1 < measured[0.2] < 0.4 and 0.4 < measured[0.8] < 1.2 and measured[0.8] > 2 * measured[0.2], measured


def test_room_keeps_the_word_where_it_was():
    channel = Channel(ChannelConfig(room_prob=1.0, rooms=4))
    click = np.zeros(16000, np.float32)
    click[5000] = 0.5
    wet = channel.room(click, np.random.default_rng(1))
    assert int(np.argmax(np.abs(wet))) == 5000 and np.abs(wet).max() == pytest.approx(0.5, rel=1e-4)
    assert np.abs(wet[5100:]).sum() > 0.05  # and it rings on


def band_energy_db(audio: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    return 10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() + 1e-20)


def test_narrow_band_removes_what_an_8khz_line_cannot_carry():
    config = ChannelConfig(narrow_band_prob=1.0, eq_prob=0.0, highpass_prob=0.0, gain_db_low=0.0, gain_db_high=0.0)
    noise = (0.1 * np.random.default_rng(2).standard_normal(16000)).astype(np.float32)
    phone = Channel(config).microphone(noise, np.random.default_rng(3))
    assert band_energy_db(noise, 4500, 7600) - band_energy_db(phone, 4500, 7600) > 40
    assert abs(band_energy_db(noise, 300, 3000) - band_energy_db(phone, 300, 3000)) < 1


def test_microphone_is_repeatable_and_stays_in_range():
    config = ChannelConfig(narrow_band_prob=0.5, eq_prob=1.0, highpass_prob=1.0, gain_db_low=0.0, gain_db_high=20.0)
    audio = (0.3 * np.random.default_rng(4).standard_normal(32000)).astype(np.float32)
    first = Channel(config).microphone(audio, np.random.default_rng(5))
    again = Channel(config).microphone(audio, np.random.default_rng(5))
    other = Channel(config).microphone(audio, np.random.default_rng(6))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert first.dtype == np.float32 and len(first) == len(audio) and np.abs(first).max() <= 1.0


def test_training_sequences_go_through_the_room_and_the_microphone(tiny_dataset):
    """With a Channel the sequence maker's audio is the room's, then the noise, then the
    microphone's: repeatable for a seed and different from the plain sequence."""
    from kws.frontend import Mfcc
    from training.data import balanced_indices, load_clips, load_noise, scan
    from training.sequences import AugmentConfig, SequenceMaker, lay_out

    data = scan(tiny_dataset, ("yes", "no", "up"), 30, 0)
    clips = load_clips(data.clips("training"), data.labels)
    always = ChannelConfig(room_prob=1.0, narrow_band_prob=1.0, eq_prob=0.0, highpass_prob=0.0, gain_db_low=0.0,
                           gain_db_high=0.0, rooms=2)
    config = AugmentConfig(seq_seconds=3.0, noise_prob=0.0)
    noise = load_noise(data.noise_files, "training")
    heard = SequenceMaker(clips, noise, data.labels, Mfcc(), config, channel=Channel(always))
    plain = SequenceMaker(clips, noise, data.labels, Mfcc(), config)
    plan = plain.plan(balanced_indices(clips.labels, data.labels, np.random.default_rng(0)), np.random.default_rng(0))
    speech, _ = lay_out(clips, plan[0], plain.length, np.random.default_rng(1), config, plain.silence)
    through = heard.heard(speech, np.random.default_rng(2))
    assert np.array_equal(plain.heard(speech, np.random.default_rng(2)), speech)  # no noise asked, no channel
    np.testing.assert_array_equal(through, heard.heard(speech, np.random.default_rng(2)))
    spectrum = np.abs(np.fft.rfft(through)) ** 2
    freqs = np.fft.rfftfreq(len(through), 1 / 16000)
    assert spectrum[freqs > 4500].sum() < 1e-4 * spectrum.sum()  # the narrow band
    assert not np.allclose(through, speech, atol=1e-3)
    x, y, w = heard.batch(plan, [0, 1], 3)
    x2, _, _ = heard.batch(plan, [0, 1], 3)
    np.testing.assert_array_equal(x, x2)
    assert np.isfinite(x).all() and x.shape[:2] == y.shape == w.shape
