// Compiled with -fno-exceptions: the whole library builds, runs, and a bad parameter ends the
// program through POSENC_THROW's default (the message on stderr, then abort) instead of
// continuing. The failing call runs in a child process so that this test can check how it ended.
#include <posenc/posenc.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

static_assert(!POSENC_HAS_EXCEPTIONS, "this test is built with -fno-exceptions");

int main() {
  // The normal path: an attention layer computes.
  const posenc::Index n = 6, d = 8;
  const posenc::Matrix<float> x = posenc::Matrix<float>::Identity(n, d);
  const posenc::Matrix<float> w = posenc::Matrix<float>::Identity(d, d);
  posenc::AttentionOptions<float> opt;
  opt.heads = 2;
  const posenc::Matrix<float> y =
      posenc::attention(x, w, w, w, w, posenc::RotaryEncoding<float>(4), opt);
  if (!y.allFinite()) {
    std::fprintf(stderr, "no_exceptions: attention output is not finite\n");
    return 1;
  }

  // The error path, in a child whose stderr goes to a pipe.
  int fds[2];
  if (pipe(fds) != 0) return 1;
  const pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    posenc::RotaryEncoding<float> bad(7);  // odd head_dim: must not return
    (void)bad;
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[256];
  for (ssize_t got; (got = read(fds[0], buf, sizeof buf)) > 0;)
    err.append(buf, std::size_t(got));
  int status = 0;
  waitpid(pid, &status, 0);
  const bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  const bool named = err.find("posenc: RotaryEncoding: rotary_dim = 7") != std::string::npos;
  if (!aborted || !named) {
    std::fprintf(stderr, "no_exceptions: expected abort with the message, got %s and stderr '%s'\n",
                 aborted ? "abort" : "no abort", err.c_str());
    return 1;
  }
  std::printf("no_exceptions: aborted with \"%s\"\n", err.substr(0, err.find('\n')).c_str());
  return 0;
}
