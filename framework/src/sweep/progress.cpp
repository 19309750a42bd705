#include "sweep/progress.hpp"

#include <cmath>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace drift::sweep {
namespace {

std::string token(const std::string& s) {
  if (s.empty()) return "-";
  std::string t = s;
  for (char& c : t)
    if (c == ' ' || c == '\t' || c == '\n') c = '_';
  return t;
}
std::string untoken(const std::string& s) { return s == "-" ? "" : s; }

std::string label(const CellProgress& p) {
  return absl::StrCat("[", p.phase, p.name.empty() ? "" : " ", p.name, "]");
}

std::string format_rate(double r) {
  if (r < 10) return absl::StrFormat("%.2f", r);
  if (r < 1000) return absl::StrFormat("%.1f", r);
  return absl::StrFormat("%.0f", r);
}

}  // namespace

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return absl::StrFormat("%.0fs", s);
  if (s < 3600) return absl::StrFormat("%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return absl::StrFormat("%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) / 60) % 60);
}

std::string phase_line(const std::string& phase, const std::string& name, const std::string& note) {
  std::string line = absl::StrCat("@phase ", token(phase), " ", token(name));
  if (!note.empty()) {
    std::string n = note;
    for (char& c : n)
      if (c == '\n') c = ' ';
    absl::StrAppend(&line, " ", n);
  }
  return line;
}

std::string progress_line(const std::string& phase, const std::string& name, int64_t done, int64_t total,
                          std::optional<double> rate, std::optional<double> loss,
                          const std::vector<double>& m_tau) {
  std::string line = absl::StrCat("@progress ", token(phase), " ", token(name), " ", done, " ", total, " ",
                                  rate && std::isfinite(*rate) ? absl::StrFormat("%.4g", *rate) : "-", " ",
                                  loss ? absl::StrFormat("%.6g", *loss) : "-");
  for (double m : m_tau) absl::StrAppend(&line, absl::StrFormat(" %.3g", m));
  return line;
}

bool apply_progress_line(const std::string& line, CellProgress& p, CellProgress* ended, bool* phase_changed) {
  std::istringstream in(line);
  std::string tag, phase, name;
  in >> tag;
  if (tag != "@phase" && tag != "@progress") return false;
  if (!(in >> phase >> name)) return false;
  name = untoken(name);
  CellProgress next;
  next.phase = phase;
  next.name = name;
  if (tag == "@phase") {
    std::string rest;
    std::getline(in, rest);
    const size_t start = rest.find_first_not_of(' ');
    next.note = start == std::string::npos ? "" : rest.substr(start);
    // The same phase going on (e.g. waiting, then loading): keep its counts.
    if (phase == p.phase && name == p.name) {
      p.note = next.note;
      return true;
    }
  } else {
    std::string rate, loss;
    int64_t done = 0, total = 0;
    if (!(in >> done >> total >> rate >> loss)) return false;
    next.done = done;
    next.total = total;
    double r = 0;
    if (rate != "-" && absl::SimpleAtod(rate, &r) && std::isfinite(r)) next.rate = r;
    next.loss = untoken(loss);
    std::vector<std::string> m;
    std::string v;
    while (in >> v) m.push_back(v);
    next.m_tau = absl::StrJoin(m, ",");
  }
  const bool changed = phase != p.phase || name != p.name;
  if (changed && ended) *ended = p;
  if (phase_changed) *phase_changed = changed;
  p = std::move(next);
  return true;
}

std::string progress_unit(const CellProgress& p) { return p.phase == "cache" ? "images" : "steps"; }

std::string format_progress(const CellProgress& p) {
  std::string s = label(p);
  if (!p.note.empty()) return absl::StrCat(s, " ", p.note);
  if (p.total <= 0) return s;
  const std::string unit = progress_unit(p);
  if (unit == "steps") absl::StrAppend(&s, " step ", p.done, "/", p.total);
  else absl::StrAppend(&s, " ", p.done, "/", p.total, " ", unit);
  if (!p.loss.empty()) absl::StrAppend(&s, "  loss ", p.loss);
  double eta = NAN;
  if (p.done >= p.total) eta = 0;
  else if (p.rate && *p.rate > 0) eta = static_cast<double>(p.total - p.done) / *p.rate;
  absl::StrAppend(&s, "  ", p.rate ? format_rate(*p.rate) : "?", " ", unit, "/s  ETA ", format_duration(eta));
  if (!p.m_tau.empty()) absl::StrAppend(&s, "  m_tau [", p.m_tau, "]");
  return s;
}

std::string format_phase_end(const CellProgress& p, double seconds) {
  if (p.total <= 0 || p.done <= 0) return "";
  const std::string unit = progress_unit(p);
  std::string s = label(p);
  if (unit == "steps") absl::StrAppend(&s, " step ", p.done, "/", p.total);
  else absl::StrAppend(&s, " ", p.done, "/", p.total, " ", unit);
  absl::StrAppend(&s, " in ", format_duration(seconds));
  if (seconds > 0) absl::StrAppend(&s, " (", format_rate(static_cast<double>(p.done) / seconds), " ", unit, "/s)");
  return s;
}

}  // namespace drift::sweep
