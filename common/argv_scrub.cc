#include "common/argv_scrub.h"

#include <cstring>
#include <initializer_list>

namespace backfill {
namespace {

void Blank(char* from, char* to) {
  for (char* p = from; p < to; ++p) *p = 'x';
}

void ScrubKeyValue(char* arg) {
  for (char* p = std::strstr(arg, "password"); p != nullptr; p = std::strstr(p + 1, "password")) {
    char* q = p + std::strlen("password");
    while (*q == ' ') ++q;
    if (*q != '=') continue;
    ++q;
    while (*q == ' ') ++q;
    char* end = q;
    if (*q == '\'') {
      // Quoted value: up to the closing quote, skipping backslash escapes.
      for (end = q + 1; *end != '\0' && *end != '\''; ++end) {
        if (*end == '\\' && end[1] != '\0') ++end;
      }
      Blank(q + 1, end);
    } else {
      while (*end != '\0' && *end != ' ') ++end;
      Blank(q, end);
    }
  }
}

void ScrubUri(char* arg) {
  for (const char* scheme : {"postgresql://", "postgres://"}) {
    char* start = std::strstr(arg, scheme);
    if (start == nullptr) continue;
    char* authority = start + std::strlen(scheme);
    char* at = std::strchr(authority, '@');
    char* slash = std::strchr(authority, '/');
    if (at == nullptr || (slash != nullptr && slash < at)) continue;
    char* colon = std::strchr(authority, ':');
    if (colon != nullptr && colon < at) Blank(colon + 1, at);
  }
  // Query parameters (postgresql://host/db?password=...).
  char* query = std::strchr(arg, '?');
  if (query == nullptr) return;
  for (char* p = std::strstr(query, "password="); p != nullptr;
       p = std::strstr(p + 1, "password=")) {
    char* q = p + std::strlen("password=");
    char* end = q;
    while (*end != '\0' && *end != '&') ++end;
    Blank(q, end);
  }
}

}  // namespace

void ScrubPasswordsFromArgv(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    ScrubKeyValue(argv[i]);
    ScrubUri(argv[i]);
  }
}

}  // namespace backfill
