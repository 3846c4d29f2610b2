// fork/exec of a grid variant with its log, the wait, and the forwarding of stop signals to it.
#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

namespace loft {

namespace {

std::atomic<int> g_first_signal{0};
std::atomic<int> g_signals{0};
std::atomic<pid_t> g_child{0};
std::atomic<bool> g_forwarded{false};  // the first signal reached the current child
static_assert(std::atomic<pid_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free &&
                  std::atomic<bool>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

struct sigaction g_previous_int, g_previous_term;

void write_stderr(const char* text) {
  ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

extern "C" void ablate_forward_stop_signal(int signal) {
  const pid_t child = g_child.load();
  if (g_signals.fetch_add(1) == 0) {
    g_first_signal.store(signal);
    write_stderr(signal == SIGINT ? "\nloft ablate: SIGINT: the current variant stops after its next checkpoint, then "
                                    "the grid stops (send it again to kill the variant at once)\n"
                                  : "\nloft ablate: SIGTERM: the current variant stops after its next checkpoint, "
                                    "then the grid stops (send it again to kill the variant at once)\n");
    if (child > 0 && !g_forwarded.exchange(true)) ::kill(child, signal);
    return;
  }
  write_stderr("\nloft ablate: second signal: killing the current variant (its last checkpoint stays)\n");
  if (child > 0) ::kill(child, SIGKILL);
}

}  // namespace

ForwardStopSignals::ForwardStopSignals() {
  struct sigaction action {};
  action.sa_handler = ablate_forward_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // waitpid and file calls carry on
  for (auto [signal, previous] : {std::pair{SIGINT, &g_previous_int}, std::pair{SIGTERM, &g_previous_term}}) {
    sigaction(signal, nullptr, previous);
    if (previous->sa_handler != SIG_IGN) sigaction(signal, &action, nullptr);
  }
}

ForwardStopSignals::~ForwardStopSignals() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
}

int ForwardStopSignals::stop_requested() { return g_first_signal.load(); }

StatusOr<ChildExit> run_child(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Status::IoError(fmt::format("{}: cannot open: {}", log.string(), std::strerror(errno)));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Everything the child needs is made before fork: between fork and exec only async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return Status::Internal(fmt::format("cannot start {}: fork: {}", argv[0], std::strerror(err)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // loft ablate killed: the variant stops as on SIGTERM, with a checkpoint (a re-run continues it).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::raise(SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(args[0], args.data());
    const char* what = "loft ablate: cannot execute the variant's loft run: ";
    ssize_t ignored = ::write(STDERR_FILENO, what, std::strlen(what));
    const char* reason = std::strerror(errno);
    ignored = ::write(STDERR_FILENO, reason, std::strlen(reason));
    ignored = ::write(STDERR_FILENO, "\n", 1);
    (void)ignored;
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: whichever of the two runs first
  ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  g_child.store(pid);
  // A stop signal that came before the child's pid was known: send it now (once).
  if (const int signal = g_first_signal.load(); signal != 0 && !g_forwarded.exchange(true)) ::kill(pid, signal);
  int status = 0;
  pid_t waited;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  g_child.store(0);
  if (waited < 0) return Status::Internal(fmt::format("waitpid: {}", std::strerror(errno)));
  ChildExit out;
  if (WIFEXITED(status)) {
    out.exited = true;
    out.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  }
  return out;
}

std::string last_error_line(const std::filesystem::path& log, uint64_t from_byte) {
  std::ifstream in(log, std::ios::binary);
  if (!in.is_open()) return "";
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  // The end of a long log is enough: the error that ended the run is among its last lines.
  const uint64_t start = std::max(from_byte, size > (uint64_t{256} << 10) ? size - (uint64_t{256} << 10) : 0);
  in.seekg(static_cast<std::streamoff>(start));
  std::string line, error_level, says_error, last;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) continue;
    last = line;
    // spdlog's pattern without a terminal: "E 2026-01-31T12:00:00 message" (host.cpp's setup_logging).
    if (line.size() > 22 && line.compare(0, 2, "E ") == 0 && line[12] == 'T') {
      error_level = line.substr(22);
    } else if (line.find("error") != std::string::npos) {
      says_error = line;
    }
  }
  std::string out = !error_level.empty() ? error_level : !says_error.empty() ? says_error : last;
  if (out.size() > 400) out = out.substr(0, 397) + "...";
  return out;
}

}  // namespace loft
