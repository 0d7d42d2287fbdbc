#include "twin/codec.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "twin/plan_pool.h"

namespace pumptwin::twin {
namespace {

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    static_assert(std::is_arithmetic_v<T>);
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (static_assert below)
    buf_.append(reinterpret_cast<const char*>(b), sizeof(T));
  }
  void PutStr(absl::string_view s) {
    Put<uint32_t>(static_cast<uint32_t>(s.size()));
    buf_.append(s.data(), s.size());
  }
  void PutTime(absl::Time t) { Put<int64_t>(absl::ToUnixNanos(t)); }
  void PutDur(absl::Duration d) { Put<int64_t>(absl::ToInt64Nanoseconds(d)); }
  std::string& buf() { return buf_; }

 private:
  std::string buf_;
};

class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  template <typename T>
  bool Get(T& v) {
    if (in_.size() < sizeof(T)) return fail();
    std::memcpy(&v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return true;
  }
  bool GetStr(std::string& s) {
    uint32_t n = 0;
    if (!Get(n) || in_.size() < n) return fail();
    s.assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool GetTime(absl::Time& t) {
    int64_t ns = 0;
    if (!Get(ns)) return false;
    t = absl::FromUnixNanos(ns);
    return true;
  }
  bool GetDur(absl::Duration& d) {
    int64_t ns = 0;
    if (!Get(ns)) return false;
    d = absl::Nanoseconds(ns);
    return true;
  }
  bool ok() const { return ok_; }
  size_t remaining() const { return in_.size(); }

 private:
  bool fail() {
    ok_ = false;
    return false;
  }
  absl::string_view in_;
  bool ok_ = true;
};

static_assert(std::endian::native == std::endian::little, "codec assumes little-endian");

void PutPlan(Writer& w, const TherapyPlan& p) {
  const Prescription& rx = p.rx;
  w.PutStr(rx.drug);
  w.Put(rx.concentration.value());
  w.Put<uint8_t>(static_cast<uint8_t>(rx.mode));
  w.Put(rx.rate.value());
  w.Put<uint8_t>(rx.flex.weekly ? 1 : 0);
  w.Put<uint32_t>(static_cast<uint32_t>(rx.flex.steps.size()));
  for (const ScheduleStep& st : rx.flex.steps) {
    w.PutDur(st.start_offset);
    w.Put(st.rate.value());
  }
  w.Put<uint8_t>(rx.patient_bolus.has_value() ? 1 : 0);
  if (rx.patient_bolus.has_value()) {
    w.Put(rx.patient_bolus->volume.value());
    w.PutDur(rx.patient_bolus->duration);
    w.PutDur(rx.patient_bolus->lockout);
    w.Put(rx.patient_bolus->max_per_24h);
  }
  w.Put(rx.version);
  const DrugLimits& d = *p.drug;
  w.PutStr(d.key);
  w.PutStr(d.display_name);
  w.Put(d.max_concentration.value());
  w.Put(d.max_daily_dose.value());
  w.Put(d.soft_max_daily_dose.value());
  w.Put(d.titration_max_increase_fraction);
  w.PutDur(d.stability);
  w.Put(d.oral_morphine_equivalence);
  w.PutStr(d.source);
}

bool GetPlan(Reader& r, PlanRef& out) {
  TherapyPlan p;
  Prescription& rx = p.rx;
  double conc = 0, rate = 0;
  uint8_t mode = 0, weekly = 0, has_pb = 0;
  uint32_t n = 0;
  if (!r.GetStr(rx.drug) || !r.Get(conc) || !r.Get(mode) || !r.Get(rate) || !r.Get(weekly) ||
      !r.Get(n)) {
    return false;
  }
  if (mode > static_cast<uint8_t>(TherapyMode::kFlex) || weekly > 1 || n > r.remaining() / 16) {
    return false;
  }
  rx.concentration = MicrogramsPerMilliliter(conc);
  rx.mode = static_cast<TherapyMode>(mode);
  rx.rate = MicrolitersPerDay(rate);
  rx.flex.weekly = weekly == 1;
  rx.flex.steps.resize(n);
  for (ScheduleStep& st : rx.flex.steps) {
    double v = 0;
    if (!r.GetDur(st.start_offset) || !r.Get(v)) return false;
    st.rate = MicrolitersPerDay(v);
  }
  if (!r.Get(has_pb) || has_pb > 1) return false;
  if (has_pb == 1) {
    PatientBolusLimits pb;
    double v = 0;
    if (!r.Get(v) || !r.GetDur(pb.duration) || !r.GetDur(pb.lockout) || !r.Get(pb.max_per_24h)) {
      return false;
    }
    pb.volume = Microliters(v);
    rx.patient_bolus = pb;
  }
  if (!r.Get(rx.version)) return false;
  DrugLimits d;
  double mc = 0, md = 0, sd = 0;
  if (!r.GetStr(d.key) || !r.GetStr(d.display_name) || !r.Get(mc) || !r.Get(md) || !r.Get(sd) ||
      !r.Get(d.titration_max_increase_fraction) || !r.GetDur(d.stability) ||
      !r.Get(d.oral_morphine_equivalence) || !r.GetStr(d.source)) {
    return false;
  }
  d.max_concentration = MicrogramsPerMilliliter(mc);
  d.max_daily_dose = MicrogramsPerDay(md);
  d.soft_max_daily_dose = MicrogramsPerDay(sd);
  p.drug = InternDrug(d);
  out = InternPlan(std::move(p));
  return true;
}

}  // namespace

uint32_t Crc32(absl::string_view data) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char ch : data) crc = kTable[(crc ^ ch) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

std::string TwinCodec::Encode(const Twin& twin) {
  Writer w;
  w.Put<uint8_t>(kTwinFormatVersion);
  const Setup& su = *twin.setup_;
  const PumpConfig& c = su.cfg;
  w.PutStr(c.pump_id);
  w.Put<uint8_t>(static_cast<uint8_t>(c.profile));
  w.Put(c.reservoir_capacity.value());
  w.Put(c.catheter_length.value());
  w.Put(c.catheter_inner_diameter.value());
  w.PutTime(c.implant_time);
  w.PutDur(c.reporting_interval);
  PutPlan(w, *su.current);
  w.Put<uint8_t>(su.pending != nullptr ? 1 : 0);
  if (su.pending != nullptr) {
    PutPlan(w, *su.pending);
    w.Put<int64_t>(su.pending_at);
  }
  w.Put(su.titration_base.value());
  w.Put<int64_t>(su.titration_base_time);
  w.Put<uint8_t>(static_cast<uint8_t>(su.phase));
  ModelState st = twin.s_;
  st.Visit([&w](auto& f) { w.Put(f); });
  st.VisitV2([&w](auto& f) { w.Put(f); });
  st.VisitV3([&w](auto& f) { w.Put(f); });
  st.VisitV4([&w](auto& f) { w.Put(f); });
  w.PutStr(c.zone.is_utc() ? absl::string_view() : c.zone.name());
  const uint32_t crc = Crc32(w.buf());
  w.Put(crc);
  return std::move(w.buf());
}

absl::StatusOr<Twin> TwinCodec::Decode(absl::string_view bytes) {
  if (bytes.size() < 5) return absl::DataLossError("twin state truncated (under 5 bytes)");
  const uint8_t version = static_cast<uint8_t>(bytes[0]);
  if (version < 1 || version > kTwinFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat("twin state format version ",
                                                   static_cast<int>(static_cast<uint8_t>(bytes[0])),
                                                   " unknown (expected ", kTwinFormatVersion, ")"));
  }
  uint32_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  const absl::string_view body = bytes.substr(0, bytes.size() - 4);
  if (Crc32(body) != stored) return absl::DataLossError("twin state checksum mismatch");

  Reader r(body.substr(1));
  auto su = std::make_shared<Setup>();
  PumpConfig& c = su->cfg;
  uint8_t profile = 0, has_pending = 0, phase = 0;
  double cap = 0, len = 0, bore = 0, base = 0;
  bool ok = r.GetStr(c.pump_id) && r.Get(profile) && r.Get(cap) && r.Get(len) && r.Get(bore) &&
            r.GetTime(c.implant_time) && r.GetDur(c.reporting_interval) &&
            GetPlan(r, su->current) && r.Get(has_pending);
  if (ok && has_pending == 1) {
    ok = GetPlan(r, su->pending) && r.Get(su->pending_at);
  } else if (ok && has_pending != 0) {
    ok = false;
  }
  ok = ok && r.Get(base) && r.Get(su->titration_base_time) && r.Get(phase);
  ModelState st;
  // Versions 1-3 stored the clock-skew and stall counters wider (ModelState::Widened).
  if (ok) st.Visit([&r](auto& f) { r.Get(f); }, /*legacy=*/version < 4);
  if (ok && version >= 2) st.VisitV2([&r](auto& f) { r.Get(f); });
  // Versions 1-2 lack the learned baselines: they are learnt again from the next samples.
  std::string zone_name;
  if (ok && version >= 3) {
    st.VisitV3([&r](auto& f) { r.Get(f); });
    // Versions 1-3 hold no change point: a shift run under way finds one at its next segment.
    if (version >= 4) st.VisitV4([&r](auto& f) { r.Get(f); });
    ok = r.GetStr(zone_name);
  }
  if (ok && version == 1) {  // restart flow segments; shift_ref_hi held the last segment ratio
    st.seg_meas_ul = st.seg_prog_ul = kNaN;
    st.shift_ref_hi = st.shift_ref_lo = static_cast<float>(st.ratio);
  }
  if (!ok || !r.ok()) return absl::DataLossError("twin state truncated or malformed");
  if (r.remaining() != 0) return absl::DataLossError("twin state has trailing bytes");
  c.profile = static_cast<PumpProfile>(profile);
  c.reservoir_capacity = Microliters(cap);
  c.catheter_length = Millimeters(len);
  c.catheter_inner_diameter = Millimeters(bore);
  su->titration_base = MicrogramsPerDay(base);
  if (phase > static_cast<uint8_t>(TwinPhase::kTrialEnded)) {
    return absl::InvalidArgumentError("twin state: phase out of range");
  }
  su->phase = static_cast<TwinPhase>(phase);
  absl::StatusOr<LocalZone> zone = LocalZone::Resolve(zone_name);
  if (!zone.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("twin state: ", zone.status().message()));
  }
  c.zone = *zone;
  if (absl::Status s = ValidatePumpConfig(c); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("twin state: ", s.message()));
  }
  for (uint8_t a : st.alert) {
    if (a > static_cast<uint8_t>(Severity::kCritical)) {
      return absl::InvalidArgumentError("twin state: alert severity out of range");
    }
  }
  if (st.t < 0 || st.hour_index != FloorDiv(st.t, kNsPerHour) || !std::isfinite(st.calc_ul) ||
      !std::isfinite(st.est_ul) || !std::isfinite(st.ratio) || std::isinf(st.cp_volume_ul) ||
      st.cp_volume_ul < 0 || !std::isfinite(st.cp_level_ul) || !std::isfinite(st.cp_sxy) ||
      !(st.cp_sxx >= 0) || std::isinf(st.cp_sxx)) {
    return absl::InvalidArgumentError("twin state: model values out of range");
  }
  DeriveSetup(*su, DefaultTuning());
  return Twin(std::move(su), st);
}

}  // namespace pumptwin::twin
