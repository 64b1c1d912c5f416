// Where the configuration's values come from outside the YAML file: ${NAME} substitution from
// the environment, paths (~/ and relative ones), credential files, Zulip's zuliprc format and
// API keys. Each function is a pure step with a string error (no YAML, no Diagnostics); the
// account section reader (account_section.cc) decides which source an account uses and where
// the problem is reported, the kafka section reader uses SubstituteEnv for kafka.properties.
//
// Secrets: no error text ever holds a file's content or a key, since errors reach the log and
// --check-config's output.
//
// Private to daemon/config/. Depends on diagnostics.h for its message helpers only.
// Threads: called on the main thread during a load (at start and on each reload); the
// functions keep no state.
#ifndef ZB_DAEMON_CONFIG_CREDENTIALS_H_
#define ZB_DAEMON_CONFIG_CREDENTIALS_H_

#include <optional>
#include <string>
#include <string_view>

#include "daemon/config/config.h"  // EnvLookup, Secret

namespace zb::config_internal {

// ${NAME} -> the variable's value; "$${" -> a literal "${". Any other "$" is kept.
// False with *error for an unterminated ${, an invalid name (not quoted: it may be part of a
// secret) or an unset variable.
bool SubstituteEnv(std::string_view in, const EnvLookup& env, std::string* out, std::string* error);

// Reads a credential or other small file (at most 64 KiB) into *out. False with *error (the
// path and strerror, never the content) when it cannot be read or is larger.
bool ReadSmallFile(const std::string& path, std::string* out, std::string* error);

// A file that must exist and be readable (certificates, CA bundles).
bool CheckReadable(const std::string& path, std::string* error);

// `path` with a leading "~/" taken from $HOME and, when relative, made relative to
// `base_dir`; lexically normalised.
std::string ExpandPath(std::string_view path, const std::string& base_dir, const EnvLookup& env);

// An API key: surrounding whitespace (the newline of a file) removed; one line of printable
// characters. The error never includes the key.
bool CleanApiKey(std::string raw, Secret* out, std::string* error);

// The [api] section of a zuliprc file, as Zulip's Python bindings read it (FACTS.md §1.1).
struct Zuliprc {
  std::optional<std::string> key, email, site, client_cert, client_cert_key, cert_bundle;
  std::optional<bool> insecure;
};

// Parses the INI format of Zulip's Python bindings (ConfigParser): "[api]" with
// "name = value" or "name: value" lines; "#" and ";" start comments. Other sections are
// ignored. key, email and site are required. Errors are "line N: ..." and never quote a line
// (it may hold the key).
bool ParseZuliprc(std::string_view text, Zuliprc* out, std::string* error);

}  // namespace zb::config_internal

#endif  // ZB_DAEMON_CONFIG_CREDENTIALS_H_
