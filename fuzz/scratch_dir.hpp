// The fuzz targets' private scratch directories. A crash, timeout or out-of-memory exit skips
// atexit handlers, so each directory carries its process id (<prefix>.<pid>.XXXXXX) and every
// start removes those of processes that no longer exist.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

namespace posenc_fuzz {

/// Creates <base>/<prefix>.<pid>.XXXXXX, removed at a normal exit; "" when it cannot.
inline std::string make_scratch_dir(const std::filesystem::path& base, const std::string& prefix) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size() + 1, prefix + ".") != 0) continue;
    char* rest = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size() + 1, &rest, 10);
    if (pid <= 0 || *rest != '.' || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code e;
      fs::remove_all(it->path(), e);
    }
  }
  std::string templ =
      (base / (prefix + "." + std::to_string(static_cast<long>(::getpid())) + ".XXXXXX")).string();
  if (!::mkdtemp(&templ[0])) return "";
  static std::string created;
  created = templ;
  std::atexit([] {
    std::error_code e;
    std::filesystem::remove_all(created, e);
  });
  return templ;
}

}  // namespace posenc_fuzz
