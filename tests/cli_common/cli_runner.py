"""The part of the posenc CLI test scripts that tests/cli/test_cli.py and
tests/cli_plot/test_plot_cli.py share: running the program and counting named checks.

Each script puts this directory on sys.path (relative to its own file) before importing it, so
it runs the same from ctest and by hand.
"""
import os
import subprocess


class Runner:
    """Runs `posenc` and records checks by name: a name passes when every check under it does."""

    def __init__(self, posenc, work, timeout):
        self.posenc, self.work, self.timeout = posenc, work, timeout
        self.results = {}  # test name -> passed (a name fails when any of its checks fails)

    def w(self, name):
        """A path in the scratch directory."""
        return os.path.join(self.work, name)

    def ok(self, name, cond, detail=""):
        self.results[name] = self.results.get(name, True) and bool(cond)
        if not cond:
            print(f"FAIL {name}: {detail}")
        return cond

    @property
    def passed(self):
        return sum(1 for v in self.results.values() if v)

    @property
    def failed(self):
        return sum(1 for v in self.results.values() if not v)

    def run(self, args, timeout=None, preexec=None, text=True):
        """Runs `posenc args` (each converted with str), with `preexec` run in the child before
        the program starts; returns (exit status, stdout, stderr), as bytes when text is False."""
        p = subprocess.run([self.posenc] + [str(a) for a in args], capture_output=True, text=text,
                           timeout=self.timeout if timeout is None else timeout, preexec_fn=preexec)
        return p.returncode, p.stdout, p.stderr
