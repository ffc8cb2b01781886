// Parsing of the ops' scalar arguments (op_args.h), generic over the
// activation and parameter tables of activations.h.
#include "op_args.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mlpbench {
namespace {

std::string known_names() {
  std::string names;
  for (const ActInfo& row : kActivations) {
    if (row.approximate && std::string_view(row.approximate) != "none") continue;  // gelu once
    names += names.empty() ? "" : ", ";
    names += "'" + std::string(row.name) + "'";
  }
  return names;
}

std::string param_names(unsigned params) {
  std::string names;
  for (const ParamInfo& p : kParams) {
    if (!(params & bit(p.param))) continue;
    names += names.empty() ? "" : ", ";
    names += p.name;
  }
  return names.empty() ? "none" : names;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// The whole token as a number, or false.
bool parse_number(std::string_view token, double& out) {
  const std::string s(token);
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// One parameter's value text, checked against its row in kParams.
void set_param(const char* op, const ParamInfo& info, std::string_view value, ActSpec& spec,
               std::string_view& choice) {
  if (info.kind == ParamKind::Choice) {
    if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    choice = value;
    return;
  }
  double v = 0.0;
  const bool number = parse_number(value, v);
  const bool ok = number && std::isfinite(v) && v >= info.min && v <= info.max &&
                  (info.kind != ParamKind::Integer || v == std::floor(v));
  TORCH_CHECK_VALUE(ok, op, ": ", info.name, " must be ", info.rule, ", got ",
                    number ? text(v) : std::string(value));
  spec.params[info.param] = v;
}

ActSpec parse(const char* op, const char* arg, std::string_view text_in);

// The texts this thread parsed last: a model's layers pass the same few
// texts call after call, and a hit costs a comparison instead of a parse.
struct ParseCache {
  static constexpr int kSize = 8;
  std::string text[kSize];
  ActSpec spec[kSize];
  int next = 0;
};
thread_local ParseCache parsed;

}  // namespace

ActSpec parse_activation(const char* op, const char* arg, std::string_view text_in) {
  for (int i = 0; i < ParseCache::kSize; ++i) {
    if (parsed.text[i] == text_in) return parsed.spec[i];
  }
  const ActSpec spec = parse(op, arg, text_in);  // throws for a bad text: never cached
  parsed.text[parsed.next] = text_in;
  parsed.spec[parsed.next] = spec;
  parsed.next = (parsed.next + 1) % ParseCache::kSize;
  return spec;
}

namespace {

ActSpec parse(const char* op, const char* arg, std::string_view text_in) {
  const std::string_view full = trim(text_in);
  const size_t open = full.find('(');
  const std::string_view name = trim(full.substr(0, open));
  std::string_view inside;
  if (open != std::string_view::npos) {
    TORCH_CHECK_VALUE(full.back() == ')', op, ": ", arg,
                      " must be a name or name(param=value, ...), got '", std::string(full), "'");
    inside = full.substr(open + 1, full.size() - open - 2);
  }
  const ActInfo* row = nullptr;
  for (const ActInfo& r : kActivations) {
    if (name == r.name) {
      row = &r;
      break;
    }
  }
  TORCH_CHECK_VALUE(row, op, ": unknown ", arg, " '", std::string(name), "'; expected one of ",
                    known_names());
  ActSpec spec;
  std::string_view choice;
  bool has_choice = false;
  while (!trim(inside).empty()) {
    const size_t comma = inside.find(',');
    const std::string_view item = inside.substr(0, comma);
    inside = comma == std::string_view::npos ? std::string_view() : inside.substr(comma + 1);
    const size_t eq = item.find('=');
    TORCH_CHECK_VALUE(eq != std::string_view::npos, op, ": ", arg,
                      " parameters are param=value, got '", std::string(trim(item)), "'");
    const std::string_view key = trim(item.substr(0, eq));
    const ParamInfo* info = nullptr;
    for (const ParamInfo& p : kParams) {
      if (key == p.name && (row->params & bit(p.param))) info = &p;
    }
    TORCH_CHECK_VALUE(info, op, ": '", row->name, "' takes no parameter '", std::string(key),
                      "' (its parameters: ", param_names(row->params), ")");
    set_param(op, *info, trim(item.substr(eq + 1)), spec, choice);
    has_choice = has_choice || info->kind == ParamKind::Choice;
  }
  // A Choice parameter picks the row of that name that is its value.
  if (row->approximate) {
    const std::string_view want = has_choice ? choice : "none";
    const ActInfo* picked = nullptr;
    for (const ActInfo& r : kActivations) {
      if (name == r.name && r.approximate && want == r.approximate) picked = &r;
    }
    TORCH_CHECK_VALUE(picked, op, ": ", kParams[static_cast<int>(Param::Approximate)].name,
                      " must be ", kParams[static_cast<int>(Param::Approximate)].rule, ", got '",
                      std::string(want), "'");
    row = picked;
  }
  spec.act = row->act;
  spec.pieces = (row->params & bit(Param::Pieces)) ? static_cast<int64_t>(spec.params[Param::Pieces]) : 1;
  return spec;
}

}  // namespace

ActSpec parse_elementwise(const char* op, const char* arg, std::string_view text_in) {
  const ActSpec spec = parse_activation(op, arg, text_in);
  TORCH_CHECK_VALUE(act_info(spec.act).elementwise, op, ": '", act_info(spec.act).name,
                    "' is not elementwise (it takes the max over k pieces); use "
                    "linear_act(..., activation='", act_info(spec.act).name, "')");
  return spec;
}

std::string text(int64_t v) { return std::to_string(v); }

std::string text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string text(const c10::SymInt& v) {
  const auto known = v.maybe_as_int();
  return known ? std::to_string(*known) : std::string("?");
}

std::string text(c10::SymIntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + text(sizes[i]);
  return out + "]";
}

double checked_probability(const char* op, double p) {
  TORCH_CHECK_VALUE(p >= 0.0 && p <= 1.0, op, ": dropout probability p must be in [0, 1], got ",
                    text(p));
  return p;
}

LinearActArgs parse_linear_act_args(const OpCall& call) {
  LinearActArgs args;
  args.spec = parse_activation(call.op(), "activation", call.text("activation"));
  args.dropout_p = checked_probability(call.op(), call.real("dropout_p"));
  args.offset = call.integer("offset");
  return args;
}

LinearActArgs MlpArgs::layer(size_t l, size_t layers) const {
  LinearActArgs args = hidden;
  if (l + 1 == layers) {
    args.spec = output;
    args.dropout_p = 0.0;
  }
  args.offset = hidden.offset + static_cast<int64_t>(l);
  return args;
}

MlpArgs parse_mlp_args(const OpCall& call) {
  MlpArgs args;
  args.hidden = parse_linear_act_args(call);
  args.output = parse_activation(call.op(), "output_activation", call.text("output_activation"));
  return args;
}

}  // namespace mlpbench
