#include "bench/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <sstream>

namespace seqk_bench {
namespace {

// The child's answer, one line: seconds separated by spaces, or "error <what>".
std::string child_report(const std::function<std::vector<double>()>& timed) {
  try {
    std::ostringstream report;
    report.precision(9);
    for (double s : timed()) report << s << ' ';
    return report.str();
  } catch (const std::exception& e) {
    return std::string("error ") + e.what();
  } catch (...) {
    return "error unknown exception";
  }
}

void write_all(int fd, const std::string& text) {
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Reads until end of file; false if the deadline passed first.
bool read_until_eof(int fd, double timeout_seconds, std::string* text) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  char buffer[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;  // EOF (or a broken pipe: the exit status tells why)
    text->append(buffer, static_cast<size_t>(n));
  }
}

int wait_for_exit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

ChildTiming parse_report(const std::string& report) {
  if (report.rfind("error ", 0) == 0) return {{}, report.substr(6)};
  ChildTiming timing;
  std::istringstream values(report);
  for (double s; values >> s;) timing.seconds.push_back(s);
  return timing;
}

}  // namespace

ChildTiming time_in_child(const std::function<std::vector<double>()>& timed, double timeout_seconds) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {{}, std::string("pipe failed: ") + std::strerror(errno)};
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return {{}, std::string("fork failed: ") + std::strerror(errno)};
  }
  if (pid == 0) {
    close(fds[0]);
    write_all(fds[1], child_report(timed));
    _exit(0);  // not exit(): the parent's atexit handlers and stdio buffers are not ours to run
  }
  close(fds[1]);
  std::string report;
  const bool finished = read_until_eof(fds[0], timeout_seconds, &report);
  close(fds[0]);
  if (!finished) kill(pid, SIGKILL);
  const int status = wait_for_exit(pid);

  if (!finished) {
    std::ostringstream message;
    message << "timed out after " << timeout_seconds << " s";
    return {{}, message.str()};
  }
  if (WIFSIGNALED(status)) {
    const int signal_number = WTERMSIG(status);
    return {{}, "crashed: signal " + std::to_string(signal_number) + " (" + strsignal(signal_number) + ")"};
  }
  if (WEXITSTATUS(status) != 0) return {{}, "exited with status " + std::to_string(WEXITSTATUS(status))};
  return parse_report(report);
}

}  // namespace seqk_bench
