"""The benchmark package's own logic (not its timings): where results go,
the load marks, and the Amdahl model's arithmetic."""
import os
import subprocess
import sys
import time

import pytest

from efsfast.bench import report, run, serial, timing


def test_decrypt_tree_in_a_process_of_its_own_takes_its_later_runs():
    """s from the runs after the first (whose extra is what its first use
    imports), only runs whose items went to forked processes; p from the
    time per item at 1 worker measured in the bench."""
    job = {"per_item_s": {1: 400e-6, 2: 250e-6}, "speedup": {"serial_s": 16e-6}}
    serial.add_own_process(job, [(0.016, True), (0.011, True), (0.010, True),
                                 (0.001, False)], 1000)
    own = job["own_process"]
    assert own["first_run_cpu_per_item_s"] == pytest.approx(16e-6)
    assert own["serial_s"] == pytest.approx(10e-6) and own["parallel_s"] == pytest.approx(390e-6)
    assert own["bound_16"] == pytest.approx(400 / (10 + 390 / 16))
    job = {"per_item_s": {1: 400e-6}, "speedup": {"serial_s": 16e-6}}
    serial.add_own_process(job, [(0.016, False), (0.011, False)], 1000)
    assert "serial_s" not in job["own_process"]            # never forked: not measured
    assert job["own_process"]["first_run_cpu_per_item_s"] is None


def test_fit_recovers_the_serial_and_parallel_parts():
    s, p = 3e-6, 60e-6
    points = {n: s + p / n for n in (1, 2, 4, 8, 16)}
    got = serial.fit(points)
    assert got == pytest.approx((s, p), rel=1e-9)
    assert serial.fit({1: 1.0}) is None


def test_amdahl_bound():
    # no serial part: the ceiling's own parallel work is the bound
    assert serial.bound(0.0, 50e-6, 50e-6, 16) == pytest.approx(1.0)
    # 2 us serial against 50 us of work: 50 / (32 + 50) at 16 cores
    assert serial.bound(2e-6, 50e-6, 50e-6, 16) == pytest.approx(50 / 82)
    assert serial.bound(2e-6, 50e-6, 50e-6, 64) < serial.bound(2e-6, 50e-6, 50e-6, 16)


def test_a_missed_bound_says_what_limits_it_from_the_measured_parts():
    """A job under 0.7x of the linear ceiling gets a limit in results.md
    from its own s, p and c: the parallel part alone where c / p is under
    0.7 (no serial time could reach it), else the serial part."""
    def job(s, p, c=23e-6):
        j = {"per_item_s": {1: s + p}, "caller_cpu_per_item_s": s}
        serial.add_model(j, "a job", c)
        return {"jobs": {"a job": j}}
    (slow,) = serial.serial_targets(job(1e-6, 45e-6))
    assert not slow["met"] and slow["limit"].startswith("the parallel part alone")
    assert "c / p = 0.51x" in slow["limit"] and "s = 1.00 us" in slow["limit"]
    (serial_bound,) = serial.serial_targets(job(1e-6, 20e-6))
    assert not serial_bound["met"] and serial_bound["limit"].startswith("the serial part")
    (met,) = serial.serial_targets(job(0.01e-6, 20e-6))
    assert met["met"] and "limit" not in met


@pytest.mark.parametrize("before, after, own, busy, noisy", [
    (0.1, 1.1, 1, None, False),     # the series's own worker raised the average
    (0.9, 0.9, 1, None, True),      # neighbours were busy as it began (2 CPUs: limit 0.6)
    (0.1, 2.0, 1, None, True),      # a neighbour started during the series
    (None, None, 1, None, False),   # not known: not claimed noisy (and said so)
    # the average still holds the benchmark's previous series, but nothing
    # ran in the second before this one: quiet; and the reverse
    (1.9, 2.0, 2, 0.05, False),
    (0.1, 0.5, 1, 1.2, True),
    (4.0, 4.5, 1, 0.05, False),     # 4.0 held (decaying) + the series's own worker
])
def test_load_marks_noisy_series(before, after, own, busy, noisy):
    load = timing.Load(before, after, cpus=2, own=own, busy_before=busy, seconds=10.0)
    assert load.noisy is noisy
    assert load.to_json()["noisy"] is noisy
    if before is None:
        assert load.note() == "load not known"


def test_busy_cpus_sees_a_busy_neighbour():
    if timing.busy_cpus(0.05) is None:
        pytest.skip("no /proc/stat: CPU time is read there (Linux)")
    stop = time.monotonic() + 1.5
    spin = subprocess.Popen([sys.executable, "-c",
                             f"import time\nwhile time.monotonic() < {stop}: pass"])
    try:
        busy = timing.busy_cpus(0.5)
    finally:
        spin.wait()
    assert busy is not None and 0.8 <= busy <= (os.cpu_count() or 1)


def test_results_go_to_a_temporary_folder_unless_asked(tmp_path, monkeypatch, capsys):
    """bench --quick in a checkout must not overwrite the committed results."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    monkeypatch.setattr(serial, "bench_serial", lambda *a: {})
    assert run.main(["--quick", "--sections", "serial", "--repeat", "1"]) == 0
    assert list((tmp_path / "benchmarks" / "results").iterdir()) == []
    out = capsys.readouterr().out
    where = out.strip().splitlines()[-1].removeprefix("results in ").removesuffix("/results.md")
    assert os.path.isfile(os.path.join(where, "results.md")) and where != str(tmp_path)
    text = open(os.path.join(where, "results.md"), encoding="utf-8").read()
    assert "Load while each section ran" in text and "serial cost" in text
    # timed start-ups read bytecode, as an installed efsfast has it, not
    # sources compiled at each start (PYTHONDONTWRITEBYTECODE, editable)
    assert "efsfast's modules compiled (as installed)" in text
    package = os.path.dirname(run.__file__).rsplit(os.sep, 1)[0]
    assert os.path.isdir(os.path.join(package, "__pycache__"))


def test_a_limit_statement_serves_every_tree_size(tmp_path):
    r = {"machine": {"when": "now", "platform": "p", "python": "3", "cpus": 2},
         "repeat": 1, "loads": {},
         "targets": [{"target": "ntfs-3g backup-tree vs tar -c (10,000 files)", "ratio": 0.5,
                      "goal": 1.0, "met": False}]}
    report.write_reports(r, str(tmp_path))
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    said = report.LIMITS["ntfs-3g backup-tree vs tar -c"]
    assert f"**ntfs-3g backup-tree vs tar -c (10,000 files)** (0.50): {said}" in text


def test_the_bench_package_is_no_part_of_the_api():
    import subprocess
    import sys
    code = "import efsfast, efsfast.api, efsfast.tree, sys; print(any(m.startswith('efsfast.bench') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
