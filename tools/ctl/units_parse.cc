#include "tools/ctl/units_parse.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"

namespace pumptwin::ctl {

const char kVolumeUnitsHelp[] = "mL, uL, µL (e.g. 0.5mL, 500uL)";
const char kRateUnitsHelp[] =
    "mL/day, uL/day, µL/day, mL/h, uL/h, µL/h (also /d, /hr, /hour; e.g. 0.5mL/day, 20uL/h)";
const char kConcentrationUnitsHelp[] = "mg/mL, ug/mL, mcg/mL, µg/mL (e.g. 10mg/mL, 500mcg/mL)";
const char kDoseUnitsHelp[] = "mg, ug, mcg, µg (e.g. 15mg, 500ug)";
const char kLengthUnitsHelp[] = "mm, cm (e.g. 45cm, 0.5mm)";
const char kDurationUnitsHelp[] = "ms, s, m or min, h, d, w (e.g. 30m, 2h, 1d, 1h30m)";
const char kTimeHelp[] =
    "RFC 3339 (e.g. 2026-11-22T08:00:00Z), now, or now-DURATION / now+DURATION (e.g. now-2h)";

namespace {

// Both micro signs people type: U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU.
constexpr absl::string_view kMicroSign = "\xC2\xB5";
constexpr absl::string_view kGreekMu = "\xCE\xBC";

struct Unit {
  std::string spelling;
  double factor;  // base units per one of this unit
};

std::vector<Unit> MicroVariants(absl::string_view suffix, double factor) {
  return {{absl::StrCat("u", suffix), factor},
          {absl::StrCat(kMicroSign, suffix), factor},
          {absl::StrCat(kGreekMu, suffix), factor}};
}

// Volume units in µL.
std::vector<Unit> VolumeUnits() {
  std::vector<Unit> units = {{"mL", 1000.0}, {"ml", 1000.0}};
  for (auto& u : MicroVariants("L", 1.0)) units.push_back(u);
  for (auto& u : MicroVariants("l", 1.0)) units.push_back(u);
  return units;
}

// Mass units in µg.
std::vector<Unit> MassUnits() {
  std::vector<Unit> units = {{"mg", 1000.0}, {"mcg", 1.0}};
  for (auto& u : MicroVariants("g", 1.0)) units.push_back(u);
  return units;
}

std::vector<Unit> Combine(const std::vector<Unit>& num, const std::vector<Unit>& den) {
  std::vector<Unit> out;
  for (const Unit& n : num) {
    for (const Unit& d : den)
      out.push_back({absl::StrCat(n.spelling, "/", d.spelling), n.factor / d.factor});
  }
  return out;
}

const std::vector<Unit>& RateUnits() {
  // Denominator factor: days per unit of time.
  static const auto* units = new std::vector<Unit>(
      Combine(VolumeUnits(),
              {{"day", 1.0}, {"d", 1.0}, {"h", 1.0 / 24}, {"hr", 1.0 / 24}, {"hour", 1.0 / 24}}));
  return *units;
}

const std::vector<Unit>& ConcentrationUnits() {
  static const auto* units =
      new std::vector<Unit>(Combine(MassUnits(), {{"mL", 1.0}, {"ml", 1.0}}));
  return *units;
}

// Splits "12.5mL" into number text and unit text; `kind` names the quantity in messages.
struct Split {
  absl::string_view number;
  absl::string_view unit;
};

absl::StatusOr<Split> SplitNumberUnit(absl::string_view text, absl::string_view kind,
                                      absl::string_view accepted) {
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("empty ", kind, "; give a number and its unit, one of: ", accepted));
  }
  if (text[0] == '-') {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': a ", kind, " cannot be negative"));
  }
  size_t i = 0;
  if (text[0] == '+') i = 1;
  size_t digits = 0, dots = 0;
  for (; i < text.size(); ++i) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
      ++digits;
    } else if (text[i] == '.') {
      ++dots;
    } else {
      break;
    }
  }
  if (digits == 0 || dots > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a ", kind,
                     ": expected a number followed by its unit, one of: ", accepted));
  }
  absl::string_view number = text.substr(0, i);
  absl::string_view unit = text.substr(i);
  if (!unit.empty() && unit[0] == ' ') unit.remove_prefix(1);
  if (unit.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' has no unit: a ", kind,
                                                   " must name its unit, one of: ", accepted));
  }
  return Split{number, unit};
}

absl::StatusOr<double> ParseNumber(absl::string_view number, absl::string_view text) {
  double v = 0;
  if (!absl::SimpleAtod(number, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': '", number, "' is not a number"));
  }
  return v;
}

absl::StatusOr<double> ParseQuantity(absl::string_view raw, absl::string_view kind,
                                     const std::vector<Unit>& units, absl::string_view accepted) {
  absl::string_view text = absl::StripAsciiWhitespace(raw);
  absl::StatusOr<Split> split = SplitNumberUnit(text, kind, accepted);
  if (!split.ok()) return split.status();
  for (const Unit& u : units) {
    if (u.spelling == split->unit) {
      absl::StatusOr<double> v = ParseNumber(split->number, text);
      if (!v.ok()) return v.status();
      return *v * u.factor;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("'", text, "': unknown ", kind, " unit '",
                                                 split->unit, "'; accepted: ", accepted));
}

}  // namespace

absl::StatusOr<VolumeUl> ParseVolume(absl::string_view text) {
  static const auto* units = new std::vector<Unit>(VolumeUnits());
  absl::StatusOr<double> v = ParseQuantity(text, "volume", *units, kVolumeUnitsHelp);
  if (!v.ok()) return v.status();
  return VolumeUl{*v};
}

absl::StatusOr<RateUlPerDay> ParseRate(absl::string_view text) {
  absl::StatusOr<double> v = ParseQuantity(text, "rate", RateUnits(), kRateUnitsHelp);
  if (!v.ok()) return v.status();
  return RateUlPerDay{*v};
}

absl::StatusOr<ConcentrationUgPerMl> ParseConcentration(absl::string_view text) {
  absl::StatusOr<double> v =
      ParseQuantity(text, "concentration", ConcentrationUnits(), kConcentrationUnitsHelp);
  if (!v.ok()) return v.status();
  return ConcentrationUgPerMl{*v};
}

absl::StatusOr<DoseUg> ParseDose(absl::string_view text) {
  static const auto* units = new std::vector<Unit>(MassUnits());
  absl::StatusOr<double> v = ParseQuantity(text, "dose", *units, kDoseUnitsHelp);
  if (!v.ok()) return v.status();
  return DoseUg{*v};
}

absl::StatusOr<LengthMm> ParseLength(absl::string_view text) {
  static const auto* units = new std::vector<Unit>({{"mm", 1.0}, {"cm", 10.0}});
  absl::StatusOr<double> v = ParseQuantity(text, "length", *units, kLengthUnitsHelp);
  if (!v.ok()) return v.status();
  return LengthMm{*v};
}

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view raw) {
  absl::string_view text = absl::StripAsciiWhitespace(raw);
  static const auto* units = new std::vector<std::pair<std::string, absl::Duration>>({
      {"ms", absl::Milliseconds(1)},
      {"s", absl::Seconds(1)},
      {"min", absl::Minutes(1)},
      {"m", absl::Minutes(1)},
      {"h", absl::Hours(1)},
      {"d", absl::Hours(24)},
      {"w", absl::Hours(24 * 7)},
  });
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("empty duration; accepted units: ", kDurationUnitsHelp));
  }
  absl::Duration total;
  absl::string_view rest = text;
  while (!rest.empty()) {
    absl::StatusOr<Split> split = SplitNumberUnit(rest, "duration", kDurationUnitsHelp);
    if (!split.ok()) {
      if (rest.size() != text.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", text, "' is not a duration; accepted units: ", kDurationUnitsHelp));
      }
      return split.status();
    }
    // The unit runs until the next digit (for sums such as "1h30m").
    size_t unit_len = 0;
    while (unit_len < split->unit.size() &&
           !absl::ascii_isdigit(static_cast<unsigned char>(split->unit[unit_len]))) {
      ++unit_len;
    }
    absl::string_view unit = split->unit.substr(0, unit_len);
    const absl::Duration* per = nullptr;
    for (const auto& [spelling, d] : *units) {
      if (spelling == unit) per = &d;
    }
    if (per == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': unknown duration unit '", unit,
                                                     "'; accepted: ", kDurationUnitsHelp));
    }
    absl::StatusOr<double> v = ParseNumber(split->number, text);
    if (!v.ok()) return v.status();
    total += *v * *per;
    rest = split->unit.substr(unit_len);
  }
  return total;
}

absl::StatusOr<absl::Time> ParseTime(absl::string_view raw, absl::Time now) {
  absl::string_view text = absl::StripAsciiWhitespace(raw);
  if (absl::ConsumePrefix(&text, "now")) {
    if (text.empty()) return now;
    const char sign = text[0];
    if (sign != '-' && sign != '+') {
      return absl::InvalidArgumentError(
          absl::StrCat("'", raw, "' is not a time; accepted: ", kTimeHelp));
    }
    absl::StatusOr<absl::Duration> d = ParseDuration(text.substr(1));
    if (!d.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", raw, "' is not a time (", d.status().message(), "); accepted: ", kTimeHelp));
    }
    return sign == '-' ? now - *d : now + *d;
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", raw, "' is not a time; accepted: ", kTimeHelp));
  }
  return t;
}

absl::StatusOr<FlexStep> ParseFlexStep(absl::string_view raw, bool weekly) {
  absl::string_view text = absl::StripAsciiWhitespace(raw);
  const std::string usage =
      weekly ? "DAY-HH:MM=RATE (e.g. Mon-07:00=0.6mL/day)" : "HH:MM=RATE (e.g. 07:00=0.6mL/day)";
  std::vector<absl::string_view> parts = absl::StrSplit(text, absl::MaxSplits('=', 1));
  if (parts.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("step '", raw, "': expected ", usage));
  }
  absl::string_view when = parts[0];
  int day = 0;
  if (weekly) {
    static constexpr absl::string_view kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    std::string lower = absl::AsciiStrToLower(when.substr(0, 4));
    day = -1;
    for (int i = 0; i < 7; ++i) {
      if (lower == absl::StrCat(kDays[i], "-")) day = i;
    }
    if (day < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("step '", raw, "': weekly steps start with a day, ", usage));
    }
    when.remove_prefix(4);
  }
  int hh = -1, mm = -1;
  if (when.size() != 5 || when[2] != ':' || !absl::SimpleAtoi(when.substr(0, 2), &hh) ||
      !absl::SimpleAtoi(when.substr(3, 2), &mm) || hh < 0 || hh > 23 || mm < 0 || mm > 59) {
    return absl::InvalidArgumentError(
        absl::StrCat("step '", raw, "': bad time of day '", when, "', expected ", usage));
  }
  absl::StatusOr<RateUlPerDay> rate = ParseRate(parts[1]);
  if (!rate.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("step '", raw, "': ", rate.status().message()));
  }
  return FlexStep{absl::Hours(24 * day + hh) + absl::Minutes(mm), *rate};
}

absl::StatusOr<std::vector<FlexStep>> NormalizeFlexSteps(std::vector<FlexStep> steps, bool weekly) {
  if (steps.empty()) return absl::InvalidArgumentError("a flex schedule needs at least one --step");
  std::sort(steps.begin(), steps.end(),
            [](const FlexStep& a, const FlexStep& b) { return a.start_offset < b.start_offset; });
  if (steps.front().start_offset != absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the first step of a flex schedule must start at ", weekly ? "Mon-00:00" : "00:00"));
  }
  for (size_t i = 1; i < steps.size(); ++i) {
    if (steps[i].start_offset == steps[i - 1].start_offset) {
      return absl::InvalidArgumentError(
          absl::StrCat("two flex steps start at the same time (offset ",
                       absl::FormatDuration(steps[i].start_offset), ")"));
    }
  }
  return steps;
}

}  // namespace pumptwin::ctl
