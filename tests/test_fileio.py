"""atomic_path: outputs get the umask's mode; SIGTERM and SIGKILL leave no temporary files behind.

Writers run in subprocesses: the umask is per process, and the signals must hit a process other than pytest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from facemorphic.fileio import atomic_path, remove_stale_temps, write_text_atomic

#: Writes a growing file inside atomic_path, announces its temporary path, then waits to be signalled.
WRITER = textwrap.dedent(r"""
    import signal, sys, time
    from facemorphic.fileio import atomic_path
    dest, handler = sys.argv[1], sys.argv[2]
    if handler == "chained":
        def on_term(signum, frame):
            open(dest + ".handler-ran", "w").close()
            sys.exit(3)
        signal.signal(signal.SIGTERM, on_term)
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        block = b"\xab" * (1 << 20)
        for _ in range(64):  # 64 MiB, then wait (bounded, whatever happens to the signal)
            fh.write(block)
        fh.flush()
        print(tmp, flush=True)
        for _ in range(600):
            time.sleep(0.1)
""")


def _start_writer(dest, handler: str = "default") -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(dest), handler], stdout=subprocess.PIPE, text=True)
    tmp = proc.stdout.readline().strip()
    assert tmp, "writer printed no temporary path"
    return proc, tmp


def _leftovers(folder, dest_name: str) -> list[str]:
    stem = dest_name.rsplit(".", 1)[0]
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{stem}."))


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_final_file_gets_the_mode_open_gives(tmp_path, umask, expected):
    script = textwrap.dedent(f"""
        import os, sys
        os.umask({umask})
        from facemorphic.fileio import write_text_atomic
        write_text_atomic(sys.argv[1] + "/atomic.txt", "x")
        open(sys.argv[1] + "/plain.txt", "w").close()
    """)
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    atomic_mode = (tmp_path / "atomic.txt").stat().st_mode & 0o777
    assert atomic_mode == (tmp_path / "plain.txt").stat().st_mode & 0o777 == expected
    assert (tmp_path / "atomic.txt").read_text() == "x"


def test_sigterm_removes_the_temporary_file_and_kills_as_before(tmp_path):
    dest = tmp_path / "big.h5"
    proc, tmp = _start_writer(dest)
    assert os.path.getsize(tmp) == 64 << 20
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM  # the default action still happens (143 in a shell)
    assert not os.path.exists(tmp) and not dest.exists()
    assert _leftovers(tmp_path, dest.name) == []


def test_sigterm_chains_to_the_previous_handler(tmp_path):
    dest = tmp_path / "big.h5"
    proc, tmp = _start_writer(dest, "chained")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 3
    assert (tmp_path / "big.h5.handler-ran").exists()
    assert not os.path.exists(tmp) and not dest.exists()
    assert _leftovers(tmp_path, dest.name) == []


def test_temp_of_a_sigkilled_writer_is_removed_by_the_next_write(tmp_path):
    dest = tmp_path / "out.csv"
    proc, tmp = _start_writer(dest)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert os.path.exists(tmp)  # SIGKILL cannot be caught: the temporary is left behind
    # a temporary of a writer that is still alive (this process's parent) and an unrelated dot file stay
    live_pid_temp = tmp_path / os.path.basename(tmp).replace(f"-{proc.pid}.", f"-{os.getppid()}.")
    live_pid_temp.write_bytes(b"busy")
    (tmp_path / ".out.notes").write_text("keep")
    write_text_atomic(dest, "a,b\n1,2\n")
    assert dest.read_text() == "a,b\n1,2\n"
    assert not os.path.exists(tmp)
    assert _leftovers(tmp_path, dest.name) == sorted([live_pid_temp.name, ".out.notes"])


def test_failed_block_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    dest = tmp_path / "table.csv"
    write_text_atomic(dest, "old\n")
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_path(dest) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("half-way")
    assert dest.read_text() == "old\n"
    assert _leftovers(tmp_path, dest.name) == []
    assert remove_stale_temps(dest, ".csv") == []
