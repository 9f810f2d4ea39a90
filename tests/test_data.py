import numpy as np
import pytest

from kws.frontend import Mfcc
from training.data import (
    COMMANDS,
    SILENCE,
    UNKNOWN,
    DataError,
    balanced_indices,
    extra_training_clips,
    load_clips,
    merge_clips,
    load_noise,
    scan,
    speaker_of,
    speech_halves,
    speech_speaker,
    speech_training_clips,
    which_set,
    word_span,
)
from training.sequences import AugmentConfig, SequenceMaker, Word, frame_targets


def test_which_set_keeps_a_speaker_together_and_is_stable():
    names = [f"{s}_nohash_{i}.wav" for s in ("0a7c2a8d", "ffd2ba2f", "1b4c9b89", "c9b653a0") for i in range(5)]
    for name in names:
        same_speaker = [n for n in names if n.split("_")[0] == name.split("_")[0]]
        assert {which_set(n, 15, 10) for n in same_speaker} == {which_set(name, 15, 10)}
    # The rule is TensorFlow's: known values from its input_data.which_set.
    assert which_set("yes/0a7c2a8d_nohash_0.wav", 10, 10) == which_set("no/0a7c2a8d_nohash_3.wav", 10, 10)
    counts = {"training": 0, "validation": 0, "testing": 0}
    for i in range(3000):
        counts[which_set(f"{i:08x}_nohash_0.wav", 10, 10)] += 1
    assert 200 < counts["validation"] < 400 and 200 < counts["testing"] < 400


def test_scan_finds_classes_splits_and_noise(tiny_dataset):
    data = scan(tiny_dataset, ("yes", "no", "up"), validation_percentage=30, testing_percentage=0)
    assert data.labels == [SILENCE, UNKNOWN, "yes", "no", "up"]
    train, val = data.clips("training"), data.clips("validation")
    assert train and val
    assert {speaker_of(c.path) for c in train}.isdisjoint({speaker_of(c.path) for c in val})
    assert {c.label for c in train} == set(data.labels)
    assert {c.word for c in train if c.label == UNKNOWN} <= {"cat", "dog"}
    assert len(data.noise_files) == 2


def test_scan_uses_list_files_when_present(tiny_dataset, tmp_path):
    import shutil

    root = tmp_path / "listed"
    shutil.copytree(tiny_dataset, root)
    first_yes = sorted((root / "yes").iterdir())[0].name
    (root / "validation_list.txt").write_text(f"yes/{first_yes}\n")
    (root / "testing_list.txt").write_text("")
    data = scan(root, ("yes", "no", "up"))
    assert [c.path.name for c in data.clips("validation")] == [first_yes]


def test_any_word_list_and_all_words(tiny_dataset):
    data = scan(tiny_dataset, None, 30, 0)
    assert data.labels == [SILENCE, "cat", "dog", "no", "up", "yes"]  # no unknown class left
    with pytest.raises(DataError, match="no folder for word"):
        scan(tiny_dataset, ("yes", "zebra"))
    with pytest.raises(DataError, match="no such data folder"):
        scan(tiny_dataset / "missing")


def test_word_span_finds_the_loud_part():
    audio = np.full(16000, 1e-4, np.float32)
    audio[4000:9000] = 0.3
    start, end = word_span(audio)
    assert abs(start - 4000) <= 160 and abs(end - 9000) <= 160


def test_balanced_indices_match_command_counts():
    labels_names = [SILENCE, UNKNOWN, "yes", "no"]
    labels = np.array([2] * 50 + [3] * 30 + [1] * 200 + [0] * 5)
    chosen = balanced_indices(labels, labels_names, np.random.default_rng(0))
    picked = labels[chosen]
    assert np.sum(picked == 2) == 50 and np.sum(picked == 3) == 30
    assert np.sum(picked == 1) == 40 and np.sum(picked == 0) == 40
    more_unknown = labels[balanced_indices(labels, labels_names, np.random.default_rng(0), unknown_ratio=3)]
    assert np.sum(more_unknown == 1) == 120 and np.sum(more_unknown == 0) == 40 and np.sum(more_unknown == 2) == 50


def test_an_extra_folder_joins_training_with_its_words_mapped_to_the_task(tiny_dataset):
    """Words of the task keep their class, any other word is unknown, the noise folder is not a word."""
    labels = [SILENCE, UNKNOWN, "yes", "no"]
    clips = extra_training_clips(tiny_dataset, labels)
    by_word = {c.word: c.label for c in clips}
    assert by_word == {"yes": "yes", "no": "no", "up": UNKNOWN, "cat": UNKNOWN, "dog": UNKNOWN}
    assert len(clips) == sum(len(list((tiny_dataset / w).glob("*.wav"))) for w in by_word)
    without_unknown = extra_training_clips(tiny_dataset, [SILENCE, "yes", "no"])
    assert {c.word for c in without_unknown} == {"yes", "no"}
    unknown_only = extra_training_clips(tiny_dataset, labels, unknown_only=True)
    assert [c.path for c in unknown_only] == [c.path for c in clips if c.label == UNKNOWN]
    with pytest.raises(DataError, match=r"no non-command word folders .* \(--extra-unknown-only takes only those\)"):
        extra_training_clips(tiny_dataset, [SILENCE, UNKNOWN, "yes", "no", "up", "cat", "dog"], unknown_only=True)
    with pytest.raises(DataError, match="no such extra data folder"):
        extra_training_clips(tiny_dataset / "missing", labels)
    with pytest.raises(DataError, match="no word folders"):
        extra_training_clips(tiny_dataset / "_background_noise_", labels)


def test_non_command_speech_trains_on_the_tuning_half_of_its_speakers(speech):
    labels = [SILENCE, UNKNOWN, "yes", "no"]
    clips, speakers = speech_training_clips(speech, labels)
    files = sorted(speech.glob("*.wav"))
    tuning, held_out = speech_halves(files)
    assert speakers == sorted(tuning) and len(tuning) == len(held_out) == 2
    assert {speech_speaker(c.path) for c in clips} == set(tuning)
    assert len(clips) == len(files) // 2 and all(c.label == UNKNOWN for c in clips)
    house = speech_training_clips(speech, [SILENCE, UNKNOWN, "house"])[0]  # a task word is not non-command speech
    assert len(house) == len(clips) - len(tuning) and not any(c.path.name.startswith("house_") for c in house)
    with pytest.raises(DataError, match="this task has none"):
        speech_training_clips(speech, [SILENCE, "yes", "no"])


def test_clips_of_several_folders_merge_into_one_set(tiny_dataset):
    data = scan(tiny_dataset, ("yes", "no", "up"), 30, 0)
    first = load_clips(data.clips("training")[:5], data.labels)
    second = load_clips(data.clips("validation")[:3], data.labels)
    merged = merge_clips([first, second])
    assert merge_clips([first]) is first
    assert len(merged) == 8 and merged.paths == first.paths + second.paths
    np.testing.assert_array_equal(merged.audio, np.concatenate([first.audio, second.audio]))
    np.testing.assert_array_equal(merged.clip(4), first.clip(4))
    assert np.array_equal(merged.labels, np.concatenate([first.labels, second.labels]))
    np.testing.assert_array_equal(merged.clip(6), second.clip(1))
    np.testing.assert_array_equal(merged.spans[5], second.spans[0])


def test_frame_targets_mask_the_word_and_hold_the_label():
    # word from 0.2 s to 0.5 s, hold 0.3 s; frames end at i*160+480
    targets, weights = frame_targets([Word(3, 3200, 8000)], 120, silence=0, hop=160, window=480, hold=4800)
    frame_end = np.arange(120) * 160 + 480
    assert np.all(targets[frame_end < 8000] == 0)
    assert np.all(weights[(frame_end > 3200) & (frame_end < 8000)] == 0)
    held = (frame_end >= 8000) & (frame_end < 12800)
    assert np.all(targets[held] == 3) and np.all(weights[held] == 1)
    assert np.all(targets[frame_end >= 12800] == 0) and np.all(weights[frame_end >= 12800] == 1)
    # unknown (class 1) while spoken: its frames have the unknown target; a command's stay masked
    words = [Word(1, 3200, 8000), Word(3, 16000, 20000)]
    targets, weights = frame_targets(words, 200, silence=0, hop=160, window=480, hold=4800, unknown=1)
    frame_end = np.arange(200) * 160 + 480
    spoken = (frame_end > 3200) & (frame_end < 8000)
    assert np.all(targets[spoken] == 1) and np.all(weights[spoken] == 1)
    command = (frame_end > 16000) & (frame_end < 20000)
    assert np.all(weights[command] == 0)
    assert np.all(targets[(frame_end >= 8000) & (frame_end < 12800)] == 1)


def test_sequences_have_targets_for_the_words_placed(tiny_dataset):
    data = scan(tiny_dataset, ("yes", "no", "up"), 30, 0)
    clips = load_clips(data.clips("training"), data.labels)
    maker = SequenceMaker(clips, load_noise(data.noise_files, "training"), data.labels, Mfcc(),
                          AugmentConfig(seq_seconds=3.0), feature_fill=np.zeros(40, np.float32))
    rng = np.random.default_rng(0)
    x, y, w = maker.epoch(balanced_indices(clips.labels, data.labels, rng), rng)
    assert x.shape[1:] == (298, 40) and y.shape == w.shape == x.shape[:2]
    assert np.isfinite(x).all()
    word_classes = set(np.unique(y)) - {0}
    assert word_classes == set(range(1, len(data.labels)))  # every word class appears as a target
    assert 0 < np.mean(w == 0) < 0.5  # some frames are masked (words being spoken), most are not


def test_noise_is_split_in_time(tiny_dataset):
    data = scan(tiny_dataset, ("yes",), 30, 0)
    train, val = load_noise(data.noise_files, "training"), load_noise(data.noise_files, "validation")
    for t, v in zip(train, val):
        assert abs(len(t) / (len(t) + len(v)) - 0.85) < 0.01
        assert abs(np.sqrt(np.mean(t**2)) - 1) < 1e-3


def test_default_words_are_the_ten_commands():
    assert COMMANDS == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def test_single_clip_share_leaves_one_word_per_sequence(tiny_dataset):
    data = scan(tiny_dataset, ("yes", "no", "up"), 30, 0)
    clips = load_clips(data.clips("training"), data.labels)
    words_only = np.flatnonzero(clips.labels > 0)
    maker = SequenceMaker(clips, [], data.labels, Mfcc(), AugmentConfig(seq_seconds=4.0, single_clip_share=1.0))
    x, y, w = maker.epoch(words_only, np.random.default_rng(0))
    assert len(x) == len(words_only)  # one clip each
    for targets in y:
        assert len(set(np.unique(targets)) - {0}) == 1


def test_speed_perturbation_scales_the_clip_and_its_word_span():
    from training.sequences import perturb_speed

    t = np.arange(16000) / 16000
    clip = np.sin(2 * np.pi * 500 * t).astype(np.float32)
    faster, (start, end) = perturb_speed(clip, (4000, 12000), 0.1, np.random.default_rng(3))
    factor = 16000 / len(faster)
    assert 0.9 <= factor <= 1.1 and abs(factor - 1) > 1e-3
    assert abs(start - 4000 / factor) <= 2 and abs(end - 12000 / factor) <= 2
    spectrum = np.abs(np.fft.rfft(faster))
    assert abs(np.argmax(spectrum) * 16000 / len(faster) - 500 * factor) < 5  # pitch moves with tempo
    same, span = perturb_speed(clip, (4000, 12000), 0.0, np.random.default_rng(3))
    assert same is clip and span == (4000, 12000)


def listed_layout(root):
    """Empty WAV names in a Speech Commands layout with its own list files (the split logic
    reads names only): yes 10, no 8, cat 6, dog 6 clips, one speaker each."""
    names = {w: [f"{w[0]}{i:07d}_nohash_0.wav" for i in range(n)] for w, n in (("yes", 10), ("no", 8), ("cat", 6),
                                                                                ("dog", 6))}
    for word, files in names.items():
        (root / word).mkdir(parents=True)
        for name in files:
            (root / word / name).touch()
    testing = [f"yes/{n}" for n in names["yes"][:6]] + [f"no/{n}" for n in names["no"][:4]]
    testing += [f"cat/{n}" for n in names["cat"][:4]] + [f"dog/{n}" for n in names["dog"][:4]]
    validation = [f"yes/{names['yes'][6]}", f"cat/{names['cat'][5]}"]
    (root / "testing_list.txt").write_text("\n".join(testing) + "\n")
    (root / "validation_list.txt").write_text("\n".join(validation) + "\n")
    return root, set(testing), set(validation)


def test_the_canonical_test_split_as_published_results_score_it(tmp_path):
    from training.data import canonical_test_split, has_test_list, silence_clips

    root, testing, validation = listed_layout(tmp_path / "listed")
    # the 12-class task: the commands' listed clips, unknown subsampled to the mean command count, as much silence
    data = scan(root, ("yes", "no"), 30, 30)  # the percentages do not apply: the lists decide
    assert has_test_list(data)
    assert {f"{c.word}/{c.path.name}" for c in data.clips("validation")} == validation
    assert {f"{c.word}/{c.path.name}" for c in data.clips("testing")} == testing
    split = canonical_test_split(data)
    words = [c for c in split.clips if c.label in ("yes", "no")]
    assert {f"{c.word}/{c.path.name}" for c in words} == {t for t in testing if t.split("/")[0] in ("yes", "no")}
    unknown = [c for c in split.clips if c.label == UNKNOWN]
    assert len(unknown) == 5 and split.unknown_listed == 8  # mean of 6 and 4
    assert all(f"{c.word}/{c.path.name}" in testing for c in unknown)
    assert split.silence == 5 and split.classes == 4
    assert canonical_test_split(data).clips == split.clips  # the same subsample every run
    quiet = silence_clips([np.ones(40000, np.float32)], split.silence)
    assert len(quiet) == 5 and all(c.shape == (16000,) and 0 < np.abs(c).max() < 0.06 for c in quiet)
    # every word its own class (--words all): every listed clip, nothing subsampled, no silence made
    every = canonical_test_split(scan(root, None))
    assert {f"{c.word}/{c.path.name}" for c in every.clips} == testing
    assert (every.silence, every.classes) == (0, 4)
    # no list files: no canonical split
    (root / "testing_list.txt").unlink()
    assert not has_test_list(scan(root, ("yes", "no"), 30, 30))


def test_an_epoch_is_planned_then_made_batch_by_batch_the_same_whatever_the_batching(tiny_dataset):
    data = scan(tiny_dataset, ("yes", "no", "up"), 30, 0)
    clips = load_clips(data.clips("training"), data.labels)
    assert clips.pcm.dtype == np.int16  # held as int16; float32 only per clip
    maker = SequenceMaker(clips, load_noise(data.noise_files, "training"), data.labels, Mfcc(),
                          AugmentConfig(seq_seconds=3.0, speed=0.1), feature_fill=np.zeros(40, np.float32))
    slots = balanced_indices(clips.labels, data.labels, np.random.default_rng(0))
    plan = maker.plan(slots, np.random.default_rng(1))
    assert sorted(i for placed in plan for i, _ in placed) == sorted(slots)  # every slot once
    assert all(len(placed) >= 1 and all(0 <= at < maker.length for _, at in placed) for placed in plan)
    whole = maker.batch(plan, range(6), [7, 1])
    parts = [maker.batch(plan, which, [7, 1]) for which in ([4, 5], [0, 1, 2, 3])]
    for k in range(3):
        assert np.array_equal(whole[k], np.concatenate([parts[1][k], parts[0][k]]))
    other_epoch = maker.batch(plan, range(6), [7, 2])
    assert not np.array_equal(whole[0], other_epoch[0])  # fresh augmentation each epoch
