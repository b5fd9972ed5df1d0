"""Video: every frame translated, audio packets and timestamps untouched, limits before decoding."""

import fractions

import av
import numpy as np
import pytest
import torch

from tests.helpers import write_clip
from tests.reference_networks import BasicSRSRVGGNetCompact, randomize
from translator import TranslatorError
from translator.checkpoints import load_checkpoint
from translator.cli import main
from translator.images import Picture
from translator.inference import Engine, Options
from translator.video import parse_frames


def make_clip(path, frames=10, width=34, height=26, codec="libx264", pix_fmt="yuv420p", rotation=90, audio=True):
    """A clip whose frames count themselves (a bar as long as the frame's number), at a variable
    rate (40 and 80 ms apart in turn), with a display rotation and a sine tone."""
    made, at = [], 0
    for number in range(frames):
        pixels = np.full((height, width, 3), 40, np.uint8)
        pixels[..., 0] = (30 + number * 15) % 256
        pixels[height // 3 : 2 * height // 3, : number + 1, 1] = 220
        made.append((at, pixels))
        at += 40 if number % 2 == 0 else 80
    return write_clip(path, made, codec=codec, pix_fmt=pix_fmt, clock=fractions.Fraction(1, 1000), rotation=rotation,
                      tone_seconds=at / 1000 if audio else None)


def read_clip(path):
    """Frame times and pixels, rotation, audio packets (bytes and times), and stream starts."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = [(float(f.pts * f.time_base), f.rotation, f.to_ndarray(format="rgb24")) for f in container.decode(video)]
    with av.open(str(path)) as container:
        audio = [(bytes(p), float(p.pts * p.time_base), float(p.dts * p.time_base)) for p in container.demux(audio=0) if p.dts is not None] if container.streams.audio else []
        starts = [None if s.start_time is None else float(s.start_time * s.time_base) for s in container.streams]
    return frames, audio, starts


@pytest.fixture
def upscaler(tmp_path):
    path = tmp_path / "x2.pth"
    torch.save(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)).state_dict(), path)
    return path


def test_a_clip_is_translated_frame_by_frame_with_its_audio_and_times_untouched(tmp_path, upscaler, capsys):
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.mkv"
    assert main(["translate", str(clip), "-c", str(upscaler), "-o", str(out), "--codec", "ffv1"]) == 0
    assert capsys.readouterr().out.startswith(f"{out} (10 frames, 68x52, ffv1 yuv444p; 1 audio/subtitle stream copied as they were)")
    frames_in, audio_in, starts_in = read_clip(clip)
    frames_out, audio_out, starts_out = read_clip(out)
    # every frame, at its own time (a variable rate), turned as the source says; Matroska holds
    # no negative time, so its muxer moves the whole file by the AAC priming (the mp4 test below
    # sees the times themselves)
    shift = frames_out[0][0] - frames_in[0][0]
    assert [t - shift for t, _, _ in frames_out] == pytest.approx([t for t, _, _ in frames_in], abs=1e-3)
    assert {r for _, r, _ in frames_out} == {90}
    # audio copied packet for packet, and the audio/video offset the same
    assert [a for a, _, _ in audio_out] == [a for a, _, _ in audio_in]
    assert [t - shift for _, t, _ in audio_out] == pytest.approx([t for _, t, _ in audio_in], abs=1e-3)
    # each frame is the engine's translation of the decoded source frame (ffv1 is lossless; the
    # 4:4:4 colour conversion costs a level or two)
    engine = Engine(load_checkpoint(upscaler), options=Options(device="cpu", precision="fp32"))
    for (_, _, source), (_, _, made) in zip(frames_in, frames_out):
        expected = np.round(engine.translate(Picture(source.astype(np.float32) / 255)).rgb * 255)
        assert np.abs(made.astype(float) - expected).mean() < 1.5


def test_a_trial_of_some_frames_and_odd_sides_for_4_2_0(tmp_path, capsys):
    path = tmp_path / "x1.pth"
    torch.save(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=1)).state_dict(), path)
    clip = make_clip(tmp_path / "odd.mkv", width=33, height=25, codec="ffv1", pix_fmt="yuv444p", audio=False, rotation=0)
    out = tmp_path / "trial.mp4"
    assert main(["translate", str(clip), "-c", str(path), "-o", str(out), "--frames", "2:5"]) == 0
    assert "(3 frames, 33x25, h264 yuv420p crf 18; padded to 34x26 for yuv420p)" in capsys.readouterr().out
    frames, _, _ = read_clip(out)
    assert [round(t, 3) for t, _, _ in frames] == [0.12, 0.16, 0.24]
    # full colour needs no even sides; a format the codec is not offered with is one line
    assert main(["translate", str(clip), "-c", str(path), "-o", str(tmp_path / "full.mp4"), "--frames", "0:2", "--pix-fmt", "yuv444p"]) == 0
    assert "(2 frames, 33x25, h264 yuv444p crf 18)" in capsys.readouterr().out
    assert main(["translate", str(clip), "-c", str(path), "-o", str(tmp_path / "x.mp4"), "--pix-fmt", "rgb48"]) == 1
    assert "h264 is offered with pixel formats yuv420p, yuv444p, not 'rgb48'" in capsys.readouterr().err


def test_bad_clips_options_and_limits_are_one_line_and_leave_nothing(tmp_path, upscaler, monkeypatch, capsys):
    clip = make_clip(tmp_path / "clip.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[:300])
    cases = [
        ([str(broken)], "broken.mp4 is not a video this tool can read"),
        ([str(clip), "--frames", "5:2"], "--frames takes START:END frame numbers"),
        ([str(clip), "-o", str(tmp_path / "x.webm"), "--codec", "h264"], "a .webm file cannot hold h264"),
        ([str(clip), str(clip)], "a video is translated on its own"),
        # found only while decoding, and the job's folder goes with it
        ([str(clip), "--frames", "50:60"], "clip.mp4 has no frames in 50:60"),
    ]
    for args, message in cases:
        assert main(["translate", *args, "-c", str(upscaler), "-o", str(tmp_path / "o.mp4")] if "-o" not in args else ["translate", *args, "-c", str(upscaler)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    monkeypatch.setenv("TRANSLATOR_MAX_VIDEO_SECONDS", "0.5")
    assert main(["translate", str(clip), "-c", str(upscaler), "-o", str(tmp_path / "long.mp4")]) == 1
    assert "over the 0.5 s limit (TRANSLATOR_MAX_VIDEO_SECONDS)" in capsys.readouterr().err
    assert not list(tmp_path.glob("*long.mp4*")) and not list(tmp_path.glob("*o.mp4*"))
    assert parse_frames("10:") == (10, None) and parse_frames(":4") == (0, 4)
    with pytest.raises(TranslatorError):
        parse_frames("a:b")


def test_in_mp4_the_frames_keep_their_own_timestamps(tmp_path, upscaler):
    clip = make_clip(tmp_path / "clip.mp4", frames=6)
    assert main(["translate", str(clip), "-c", str(upscaler), "-o", str(tmp_path / "out.mp4")]) == 0
    (frames_in, audio_in, starts_in), (frames_out, audio_out, starts_out) = read_clip(clip), read_clip(tmp_path / "out.mp4")
    assert [t for t, _, _ in frames_out] == pytest.approx([t for t, _, _ in frames_in], abs=1e-3)
    assert [t for _, p, d in audio_out for t in (p, d)] == pytest.approx([t for _, p, d in audio_in for t in (p, d)])
    assert starts_out == pytest.approx(starts_in)


def test_the_app_translates_a_clip_through_its_api_with_the_audio_kept(tmp_path, app_server):
    from gradio_client import Client, handle_file

    url, studio = app_server
    clip = make_clip(tmp_path / "clip.mp4", frames=6)
    client = Client(url, verbose=False)
    try:
        made = client.predict(handle_file(str(clip)), "esrgan", "compact-sr-x2", api_name="/translate_video")
        studio.max_video_seconds = 1e-4  # what a host this slow would allow
        with pytest.raises(Exception, match=r"this video would take this server about .* over its limit of .* a video \(TRANSLATOR_APP_MAX_VIDEO_SECONDS\)"):
            client.predict(handle_file(str(clip)), "esrgan", "compact-sr-x2", api_name="/translate_video")
    finally:
        client.close()
    path = made["path"] if isinstance(made, dict) else made
    frames_in, audio_in, _ = read_clip(clip)
    frames_out, audio_out, _ = read_clip(path)
    assert len(frames_out) == 6 and frames_out[0][2].shape == (52, 68, 3)
    assert [t for t, _, _ in frames_out] == pytest.approx([t for t, _, _ in frames_in], abs=1e-3)
    assert [a for a, _, _ in audio_out] == [a for a, _, _ in audio_in]


def jittery_clip(path, frames=12, side=96):
    """A bright patch along the top of a still, textured scene, short and long in turn (the
    jitter of real footage, exaggerated): each frame's statistics jump with it, while the bottom
    of the picture does not change at all."""
    rng = np.random.default_rng(0)
    background = rng.integers(40, 120, (side, side, 3), dtype=np.uint8)
    made = []
    for number in range(frames):
        pixels = background.copy()
        pixels[:16, : 80 if number % 2 else 16] = (250, 230, 40)
        made.append((number, pixels))
    return write_clip(path, made, codec="ffv1", pix_fmt="yuv444p")


def test_steady_normalisation_lowers_a_cyclegans_flicker(tmp_path, capsys):
    from tests.helpers import save_pth
    from tests.reference_networks import RefResnetGenerator
    from translator.video import flicker

    generator = save_pth(randomize(RefResnetGenerator(3, 3, ngf=8, n_blocks=2)).state_dict(), tmp_path / "latest_net_G.pth")
    clip = jittery_clip(tmp_path / "jittery.mkv")
    still = {}
    for name, extra in (("plain", []), ("steady", ["--steady"])):
        out = tmp_path / f"{name}.mkv"
        assert main(["translate", str(clip), "-m", "cyclegan", "-c", str(generator), "-o", str(out), "--codec", "ffv1", *extra]) == 0
        # the bottom third never changes in the clip: what changes there in the result is flicker
        still[name] = flicker(f[64:] for _, _, f in read_clip(out)[0])
    capsys.readouterr()
    assert still["steady"] < 0.5 * still["plain"], still
    # a network without instance normalisation has nothing to steady: said, not ignored
    torch.save(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)).state_dict(), tmp_path / "sr.pth")
    assert main(["translate", str(clip), "-c", str(tmp_path / "sr.pth"), "-o", str(tmp_path / "sr.mkv"), "--steady"]) == 1
    assert "--steady applies to networks that normalise each image on its own" in capsys.readouterr().err


def test_a_killed_job_resumes_from_its_last_segment_to_the_same_file(tmp_path, upscaler, monkeypatch):
    from translator.video import VideoOptions, translate_video

    monkeypatch.setenv("TRANSLATOR_VIDEO_SEGMENT_FRAMES", "3")
    clip = make_clip(tmp_path / "clip.mp4", frames=10)
    engine = Engine(load_checkpoint(upscaler), options=Options(device="cpu", precision="fp32"))
    translate_video(engine, clip, tmp_path / "straight.mp4", VideoOptions())
    assert not (tmp_path / ".straight.mp4.parts").exists()  # segments go once joined

    def killed_at_frame_8(done, total):
        if done == 8:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        translate_video(engine, clip, tmp_path / "resumed.mp4", VideoOptions(), killed_at_frame_8)
    parts = tmp_path / ".resumed.mp4.parts"
    # segments 0-2 and 3-5 are whole; the one being written when it stopped is gone
    assert sorted(p.name for p in parts.iterdir()) == ["job.json", "part-00000.nut", "part-00001.nut"]
    assert not (tmp_path / "resumed.mp4").exists()
    translated = []
    translate_video(engine, clip, tmp_path / "resumed.mp4", VideoOptions(), lambda done, total: translated.append(done))
    assert (tmp_path / "resumed.mp4").read_bytes() == (tmp_path / "straight.mp4").read_bytes()
    assert translated == [7, 8, 9, 10]  # only the frames of the unfinished segments were translated again
    # segments of another job (another quality) are not mixed in
    with pytest.raises(KeyboardInterrupt):
        translate_video(engine, clip, tmp_path / "other.mp4", VideoOptions(crf=30), killed_at_frame_8)
    translate_video(engine, clip, tmp_path / "other.mp4", VideoOptions(crf=18))
    assert (tmp_path / "other.mp4").read_bytes() == (tmp_path / "straight.mp4").read_bytes()


@pytest.mark.slow
def test_torchrun_shards_a_video_and_a_folder_across_processes(tmp_path, upscaler, monkeypatch):
    import os
    import subprocess
    import sys

    from PIL import Image

    from tests.helpers import ROOT, photo

    monkeypatch.setenv("TRANSLATOR_VIDEO_SEGMENT_FRAMES", "2")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    clip = make_clip(tmp_path / "clip.mp4", frames=9)
    # fp32 in both: this test's own process sees a CPU without bf16, torchrun's processes the real one
    assert main(["translate", str(clip), "-c", str(upscaler), "-o", str(tmp_path / "one.mp4"), "--precision", "fp32"]) == 0
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(photo(20, 16, seed=i)).save(folder / f"{i}.png")
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "translator", "translate", "--precision", "fp32"]
    for args in ([str(clip), "-c", str(upscaler), "-o", str(tmp_path / "two.mp4")], [str(folder), "-c", str(upscaler), "-o", str(tmp_path / "out")]):
        done = subprocess.run(run + args, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    # two processes, each its own segments, joined by the first: the file one process writes
    assert (tmp_path / "two.mp4").read_bytes() == (tmp_path / "one.mp4").read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i}.png" for i in range(5)]


def test_frames_as_png_for_people_who_edit(tmp_path, upscaler, capsys):
    from PIL import Image

    clip = make_clip(tmp_path / "clip.mp4", frames=5)
    assert main(["translate", str(clip), "-c", str(upscaler), "-o", str(tmp_path / "frames"), "--codec", "png"]) == 0
    assert "(5 frames as PNG, 5 written now; times in timestamps.txt; the audio stays in clip.mp4)" in capsys.readouterr().out
    folder = tmp_path / "frames" / "clip"
    assert sorted(p.name for p in folder.glob("*.png")) == [f"{i:06d}.png" for i in range(5)]
    assert Image.open(folder / "000000.png").size == (68, 52)
    times = [float(line.split()[1]) for line in (folder / "timestamps.txt").read_text().splitlines()]
    assert times == pytest.approx([t for t, _, _ in read_clip(clip)[0]], abs=1e-3)
    # run again: what is there is kept
    assert main(["translate", str(clip), "-c", str(upscaler), "-o", str(tmp_path / "frames"), "--codec", "png"]) == 0
    assert "0 written now" in capsys.readouterr().out


def test_a_10_bit_source_is_read(tmp_path, upscaler, capsys):
    clip = make_clip(tmp_path / "deep.mkv", frames=3, codec="ffv1", pix_fmt="yuv420p10le", audio=False, rotation=0)
    assert main(["translate", str(clip), "-c", str(upscaler), "-o", str(tmp_path / "deep-out.mp4")]) == 0
    frames, _, _ = read_clip(tmp_path / "deep-out.mp4")
    # the frame counter's bar survives: frame 2's is three pixels long, doubled
    assert len(frames) == 3 and frames[2][2][26, :4, 1].mean() > frames[2][2][26, 10:14, 1].mean() + 50
