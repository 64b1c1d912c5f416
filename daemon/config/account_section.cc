// The accounts: section. See account_section.h.
#include "daemon/config/account_section.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <utility>

#include "daemon/config/credentials.h"
#include "daemon/config/event_types.h"
#include "daemon/config/zulip_site.h"

namespace zb::config_internal {
namespace {

const Keys kNarrowOperators = {"channel", "stream", "topic", "sender", "is"};
const Keys kNarrowIsOperands = {"dm",        "private", "starred", "unread",
                                "mentioned", "alerted", "resolved"};
const Keys kClientCapabilities = {"notification_settings_null",
                                  "bulk_message_deletion",
                                  "user_avatar_url_field_optional",
                                  "stream_typing_notifications",
                                  "user_settings_object",
                                  "linkifier_url_template",
                                  "user_list_incomplete",
                                  "include_deactivated_groups",
                                  "archived_channels",
                                  "empty_topic_name"};

// Our defaults: every capability that makes events more complete or modern is on; the two
// that leave data out of events (avatar URLs, the full user list) are off.
std::map<std::string, bool, std::less<>> DefaultClientCapabilities() {
  std::map<std::string, bool, std::less<>> caps;
  for (std::string_view name : kClientCapabilities) caps[std::string(name)] = true;
  caps["user_avatar_url_field_optional"] = false;
  caps["user_list_incomplete"] = false;
  return caps;
}

bool ValidAccountName(std::string_view name) {
  static const std::regex kAccountName("[A-Za-z0-9._-]{1,64}");
  return std::regex_match(name.begin(), name.end(), kAccountName) && name != "." && name != "..";
}

// "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" -> seconds since the epoch.
bool ParseRfc3339(const std::string& text, int64_t* out) {
  static const std::regex kRfc3339(
      R"((\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2})))");
  std::smatch m;
  if (!std::regex_match(text, m, kRfc3339)) return false;
  auto num = [&](int i) { return std::stoi(m[i].str()); };
  std::tm tm{};
  tm.tm_year = num(1) - 1900;
  tm.tm_mon = num(2) - 1;
  tm.tm_mday = num(3);
  tm.tm_hour = num(4);
  tm.tm_min = num(5);
  tm.tm_sec = num(6);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60) {
    return false;
  }
  std::tm copy = tm;
  time_t t = timegm(&copy);
  // timegm normalises 31 February into March: a changed day means an invalid date.
  if (copy.tm_mday != tm.tm_mday && tm.tm_sec != 60) return false;
  int64_t seconds = static_cast<int64_t>(t);
  if (m[9].matched) {
    int64_t offset = num(10) * 3600 + num(11) * 60;
    if (num(10) > 23 || num(11) > 59) return false;
    seconds += m[9].str() == "+" ? -offset : offset;
  }
  *out = seconds;
  return true;
}

// One read of the accounts list; the methods are the loader's, moved here whole.
class AccountsReader {
 public:
  explicit AccountsReader(const LoadContext& ctx)
      : diag_(ctx.diag), env_(ctx.env), base_dir_(ctx.base_dir) {}

  void LoadAccounts(const Entry& entry, std::vector<AccountConfig>* out) {
    if (!entry.value.IsSequence() || entry.value.size() == 0) {
      diag_.Add(entry.Mark(), entry.path, "expected a list of at least one account");
      return;
    }
    std::map<std::string, size_t> seen;  // lower-cased name -> index
    for (size_t i = 0; i < entry.value.size(); ++i) {
      YAML::Node node = entry.value[i];
      Entry account_entry{node, IndexPath("accounts", i), node.Mark()};
      if (!node.IsMap()) {
        diag_.Add(node.IsNull() ? entry.value.Mark() : node.Mark(), account_entry.path,
                  "expected a mapping with name and credentials");
        continue;
      }
      AccountConfig account;
      if (LoadAccount(account_entry, &account)) {
        auto [it, inserted] = seen.emplace(ToLower(account.name), i);
        if (!inserted) {
          Fields f = ReadMapQuiet(node, account_entry.path);
          const Entry& name = f.at("name");
          diag_.Add(name.Mark(), name.path,
                    "duplicate account name " + Quote(account.name) + " (also accounts[" +
                        std::to_string(it->second) +
                        "]); expected names unique regardless of case");
          continue;
        }
        out->push_back(std::move(account));
      }
    }
  }

  // The fields of a mapping already checked (no diagnostics).
  Fields ReadMapQuiet(const YAML::Node& node, const std::string& path) {
    Diagnostics ignored("");
    return ReadMap(ignored, Entry{node, path, node.Mark()}, {});
  }

  bool LoadAccount(const Entry& entry, AccountConfig* a) {
    size_t errors_before = diag_.count();
    const std::string& p = entry.path;
    Fields f = ReadMap(diag_, entry,
                       {"name", "zuliprc", "site", "email", "api_key", "api_key_file",
                        "systemd_credential", "tls", "event_types", "fetch_event_types", "narrow",
                        "all_public_streams", "apply_markdown", "client_gravatar", "slim_presence",
                        "client_capabilities", "queue_lifespan_secs", "backfill_from"});
    if (const Entry* e = Find(f, "name")) {
      if (ReadNonEmptyString(diag_, *e, &a->name) && !ValidAccountName(a->name)) {
        diag_.Add(e->Mark(), e->path,
                  "invalid account name " + Quote(a->name) +
                      "; expected 1 to 64 characters of A-Z a-z 0-9 . _ - (not . or ..), "
                      "since it names files and Kafka keys");
      }
    } else {
      diag_.Add(entry.Mark(), JoinPath(p, "name"), "missing; expected the account's name");
    }
    LoadCredentials(entry, f, a);

    if (const Entry* e = Find(f, "event_types")) {
      std::vector<std::string> types;
      if (ReadStringList(diag_, *e, &types)) {
        for (size_t i = 0; i < types.size(); ++i) {
          if (!IsKnownEventType(types[i])) {
            diag_.Add(e->value[i].Mark(), IndexPath(e->path, i),
                      "unknown event type " + Quote(types[i]) + "; " +
                          Suggest(types[i], KnownEventTypes()));
          }
        }
        a->event_types = std::move(types);
      }
    }
    if (const Entry* e = Find(f, "fetch_event_types")) {
      ReadStringList(diag_, *e, &a->fetch_event_types);
    }
    if (const Entry* e = Find(f, "narrow")) LoadNarrow(*e, a);
    for (auto [key, field] : {std::pair{"all_public_streams", &a->all_public_streams},
                              std::pair{"apply_markdown", &a->apply_markdown},
                              std::pair{"client_gravatar", &a->client_gravatar},
                              std::pair{"slim_presence", &a->slim_presence}}) {
      if (const Entry* e = Find(f, key)) ReadBool(diag_, *e, field);
    }
    a->client_capabilities = DefaultClientCapabilities();
    if (const Entry* e = Find(f, "client_capabilities")) {
      Fields caps = ReadMap(diag_, *e, kClientCapabilities);
      for (auto& [name, cap] : caps) {
        bool value = false;
        if (ReadBool(diag_, cap, &value)) a->client_capabilities[name] = value;
      }
    }
    if (const Entry* e = Find(f, "queue_lifespan_secs")) {
      ReadInt(diag_, *e, 600, 604800, &a->queue_lifespan_secs,
              "Zulip's default is 600 and it caps lifespans at 7 days");
    }
    if (const Entry* e = Find(f, "backfill_from")) LoadBackfillFrom(*e, a);
    a->backfill_from.text =
        a->backfill_from.kind == BackfillFrom::Kind::kNone ? "none" : a->backfill_from.text;
    return diag_.count() == errors_before;
  }

  void LoadNarrow(const Entry& e, AccountConfig* a) {
    static const char kExpected[] =
        "expected a list of [operator, operand] pairs, e.g. [[channel, general], [is, dm]]";
    if (!e.value.IsSequence()) {
      diag_.Add(e.Mark(), e.path, kExpected);
      return;
    }
    for (size_t i = 0; i < e.value.size(); ++i) {
      YAML::Node pair = e.value[i];
      std::string path = IndexPath(e.path, i);
      YAML::Mark mark = pair.IsNull() ? e.value.Mark() : pair.Mark();
      if (!pair.IsSequence() || pair.size() != 2 || !pair[0].IsScalar() || !pair[1].IsScalar()) {
        diag_.Add(mark, path, std::string("not an [operator, operand] pair; ") + kExpected);
        continue;
      }
      std::string op = pair[0].Scalar();
      std::string operand = pair[1].Scalar();
      if (std::find(kNarrowOperators.begin(), kNarrowOperators.end(), op) ==
          kNarrowOperators.end()) {
        diag_.Add(pair[0].Mark(), path,
                  "unknown narrow operator " + Quote(op) + "; " + Suggest(op, kNarrowOperators) +
                      " (the operators Zulip applies to event queues)");
        continue;
      }
      if (operand.empty()) {
        diag_.Add(pair[1].Mark(), path, "empty operand; expected a non-empty string");
        continue;
      }
      if (op == "is" && std::find(kNarrowIsOperands.begin(), kNarrowIsOperands.end(), operand) ==
                            kNarrowIsOperands.end()) {
        diag_.Add(pair[1].Mark(), path,
                  "unsupported operand " + Quote(operand) + " for is; " +
                      Suggest(operand, kNarrowIsOperands));
        continue;
      }
      a->narrow.emplace_back(std::move(op), std::move(operand));
    }
  }

  void LoadBackfillFrom(const Entry& e, AccountConfig* a) {
    BackfillFrom& b = a->backfill_from;
    if (e.value.IsScalar()) {
      const std::string& text = e.value.Scalar();
      int64_t id = 0;
      if (text == "none") {
        b.kind = BackfillFrom::Kind::kNone;
        return;
      }
      if (ParseInt(text, &id) && id >= 0) {
        b = {BackfillFrom::Kind::kMessageId, id, 0, text};
        return;
      }
      int64_t seconds = 0;
      if (ParseRfc3339(text, &seconds)) {
        b = {BackfillFrom::Kind::kTime, 0, seconds, text};
        return;
      }
    }
    diag_.Add(e.Mark(), e.path,
              "expected none, a message id, or an RFC 3339 time such as 2026-01-31T00:00:00Z");
  }

  void LoadCredentials(const Entry& entry, const Fields& f, AccountConfig* a) {
    const std::string& p = entry.path;
    static const Keys kSources = {"zuliprc", "api_key", "api_key_file", "systemd_credential"};
    std::vector<const Entry*> sources;
    std::string source_name;
    for (std::string_view s : kSources) {
      if (const Entry* e = Find(f, s)) {
        sources.push_back(e);
        if (sources.size() == 1) source_name = s;
      }
    }
    if (sources.empty()) {
      diag_.Add(entry.Mark(), p,
                "no credentials; expected one of zuliprc, api_key, api_key_file or "
                "systemd_credential");
      return;
    }
    if (sources.size() > 1) {
      diag_.Add(sources[1]->key_mark, sources[1]->path,
                "a second credential source; expected exactly one of zuliprc, api_key, "
                "api_key_file or systemd_credential");
      return;
    }
    const Entry& source = *sources[0];
    Zuliprc rc;
    const Entry* site = Find(f, "site");
    const Entry* email = Find(f, "email");
    std::string error;
    if (source_name == "zuliprc") {
      a->credential_source = CredentialSource::kZuliprc;
      for (const Entry* e : {site, email}) {
        if (e) {
          diag_.Add(e->key_mark, e->path,
                    "given together with zuliprc; expected it only in the zuliprc file");
        }
      }
      std::string path, text;
      if (!ReadNonEmptyString(diag_, source, &path)) return;
      a->credential_path = ExpandPath(path, base_dir_, env_);
      if (!ReadSmallFile(a->credential_path, &text, &error)) {
        diag_.Add(source.Mark(), source.path, error);
        return;
      }
      if (!ParseZuliprc(text, &rc, &error)) {
        diag_.Add(source.Mark(), source.path, a->credential_path + ": " + error);
        return;
      }
      if (!CleanApiKey(*rc.key, &a->api_key, &error)) {
        diag_.Add(source.Mark(), source.path, a->credential_path + ": [api] key: " + error);
        return;
      }
      a->email = *rc.email;
      a->site = NormalizeSite(*rc.site);
      if (!CheckSite(a->site)) {
        diag_.Add(source.Mark(), source.path,
                  a->credential_path + ": [api] site " + Quote(*rc.site) +
                      " is not a URL; expected e.g. https://chat.example.com");
      }
    } else {
      std::string site_text;
      if (!site) {
        diag_.Add(entry.Mark(), JoinPath(p, "site"),
                  "missing; expected the Zulip server URL, e.g. https://chat.example.com "
                  "(required with " +
                      source_name + ")");
      } else if (ReadNonEmptyString(diag_, *site, &site_text)) {
        a->site = NormalizeSite(site_text);
        if (!CheckSite(a->site)) {
          diag_.Add(site->Mark(), site->path,
                    "not a URL; expected the Zulip server URL, e.g. https://chat.example.com");
        }
      }
      if (!email) {
        diag_.Add(entry.Mark(), JoinPath(p, "email"),
                  "missing; expected the bot's email address (required with " + source_name + ")");
      } else if (ReadNonEmptyString(diag_, *email, &a->email)) {
        CheckEmail(*email, a->email);
      }
      std::string raw;
      if (source_name == "api_key") {
        a->credential_source = CredentialSource::kApiKey;
        if (!source.value.IsScalar()) {
          diag_.Add(source.Mark(), source.path, "expected a string, e.g. ${ZULIP_API_KEY}");
          return;
        }
        if (!SubstituteEnv(source.value.Scalar(), env_, &raw, &error) ||
            !CleanApiKey(raw, &a->api_key, &error)) {
          diag_.Add(source.Mark(), source.path, error);
          return;
        }
      } else {
        std::string path;
        if (!ReadNonEmptyString(diag_, source, &path)) return;
        if (source_name == "api_key_file") {
          a->credential_source = CredentialSource::kApiKeyFile;
          a->credential_path = ExpandPath(path, base_dir_, env_);
        } else {
          a->credential_source = CredentialSource::kSystemdCredential;
          if (path.find('/') != std::string::npos || path == "." || path == "..") {
            diag_.Add(source.Mark(), source.path,
                      "expected a credential name (as in LoadCredential=NAME:...), not a path");
            return;
          }
          std::optional<std::string> dir = env_("CREDENTIALS_DIRECTORY");
          if (!dir || dir->empty()) {
            diag_.Add(source.Mark(), source.path,
                      "$CREDENTIALS_DIRECTORY is not set; expected the daemon to run under "
                      "systemd with LoadCredential=" +
                          path + ":...");
            return;
          }
          a->credential_path = *dir + "/" + path;
        }
        if (!ReadSmallFile(a->credential_path, &raw, &error) ||
            !CleanApiKey(raw, &a->api_key, &error)) {
          diag_.Add(source.Mark(), source.path, error);
          return;
        }
      }
    }
    LoadTls(Find(f, "tls"), rc, entry, source, a);
  }

  bool CheckSite(const std::string& site) {
    static const std::regex kSite(R"(https?://[^/\s]+(/\S*)?)");
    return std::regex_match(site, kSite);
  }

  void CheckEmail(const Entry& e, const std::string& email) {
    if (email.find('@') == std::string::npos || std::any_of(email.begin(), email.end(), [](char c) {
          return std::isspace(static_cast<unsigned char>(c));
        })) {
      diag_.Add(e.Mark(), e.path, "not an email address; expected the bot's email");
    }
  }

  void LoadTls(const Entry* tls, const Zuliprc& rc, const Entry& account, const Entry& credential,
               AccountConfig* a) {
    TlsConfig& t = a->tls;
    const std::string rc_dir = std::filesystem::path(a->credential_path).parent_path().string();
    if (rc.cert_bundle) t.ca_bundle = ExpandPath(*rc.cert_bundle, rc_dir, env_);
    if (rc.client_cert) t.client_cert = ExpandPath(*rc.client_cert, rc_dir, env_);
    if (rc.client_cert_key) t.client_cert_key = ExpandPath(*rc.client_cert_key, rc_dir, env_);
    Fields f;
    Entry tls_entry{YAML::Node(), JoinPath(account.path, "tls"), account.Mark()};
    if (tls) {
      tls_entry = *tls;
      f = ReadMap(diag_, *tls,
                  {"ca_bundle", "client_cert", "client_cert_key", "insecure_skip_verify"});
    }
    for (auto [key, field] :
         {std::pair{"ca_bundle", &t.ca_bundle}, std::pair{"client_cert", &t.client_cert},
          std::pair{"client_cert_key", &t.client_cert_key}}) {
      std::string path;
      const Entry* e = Find(f, key);
      // An empty string means the default (system CAs, no client certificate).
      if (e && ReadString(diag_, *e, &path)) {
        *field = path.empty() ? std::string() : ExpandPath(path, base_dir_, env_);
      }
    }
    const Entry* insecure = Find(f, "insecure_skip_verify");
    if (insecure) ReadBool(diag_, *insecure, &t.insecure_skip_verify);
    if (rc.insecure.value_or(false) && !t.insecure_skip_verify) {
      diag_.Add(credential.Mark(), credential.path,
                a->credential_path +
                    " sets insecure=true; expected verification to be turned off only by "
                    "tls.insecure_skip_verify: true in the configuration");
    }
    if (!t.client_cert_key.empty() && t.client_cert.empty()) {
      diag_.Add(tls_entry.Mark(), tls_entry.path,
                "client_cert_key without client_cert; expected both or client_cert alone");
    }
    for (auto [key, field] :
         {std::pair{"ca_bundle", &t.ca_bundle}, std::pair{"client_cert", &t.client_cert},
          std::pair{"client_cert_key", &t.client_cert_key}}) {
      std::string error;
      if (!field->empty() && !CheckReadable(*field, &error)) {
        const Entry* e = Find(f, key);
        diag_.Add(e ? e->Mark() : account.Mark(), JoinPath(tls_entry.path, key), error);
      }
    }
  }

 private:
  Diagnostics& diag_;
  const EnvLookup& env_;
  const std::string& base_dir_;
};

}  // namespace

void ReadAccountsSection(const LoadContext& ctx, const Entry& entry,
                         std::vector<AccountConfig>* out) {
  AccountsReader(ctx).LoadAccounts(entry, out);
}

}  // namespace zb::config_internal
