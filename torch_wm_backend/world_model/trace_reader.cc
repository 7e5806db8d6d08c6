// Reads MetaSchedule traces without printing them: for each trace, a 64-bit key of its structure
// (instruction kinds, operands as variable numbers, attributes, decision shapes: everything its
// printed text holds but the decision values) and its decisions as integers.
//
// Traces with one key print the same text but for the values after `decision=`, so the tokenizer
// reads one of them and takes the others' decisions from here (tokenizer.tokenize_structure).
// Only tvm-ffi's reflection is used (no TVM headers): fields are looked up by type key and name.
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/reflection/accessor.h>
#include <tvm/ffi/string.h>
#include <tvm/ffi/tvm_ffi.h>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {
using namespace tvm::ffi;
namespace refl = tvm::ffi::reflection;

inline uint64_t Mix(uint64_t h, uint64_t x) {  // splitmix64 of the pair
  uint64_t z = h * 0x9e3779b97f4a7c15ULL + x + 0x632be59bd9b4e019ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int32_t TypeIndex(const char* key) {
  TVMFFIByteArray name{key, std::strlen(key)};
  int32_t index = -1;
  if (TVMFFITypeKeyToIndex(&name, &index) != 0) return -1;
  return index;
}

struct Reader {
  refl::FieldGetter insts{"s_tir.Trace", "insts"};
  refl::FieldGetter decisions{"s_tir.Trace", "decisions"};
  refl::FieldGetter kind{"s_tir.Instruction", "kind"};
  refl::FieldGetter inputs{"s_tir.Instruction", "inputs"};
  refl::FieldGetter attrs{"s_tir.Instruction", "attrs"};
  refl::FieldGetter outputs{"s_tir.Instruction", "outputs"};
  refl::FieldGetter kind_name{"s_tir.InstructionKind", "name"};
  refl::FieldGetter int_value{"ir.IntImm", "value"};
  refl::FieldGetter float_value{"ir.FloatImm", "value"};
  int32_t int_imm = TypeIndex("ir.IntImm");
  int32_t float_imm = TypeIndex("ir.FloatImm");
  std::unordered_map<const Object*, uint64_t> kinds;  // InstructionKind -> hash of its name
  std::unordered_map<const Object*, uint64_t> vars;   // random variable -> its number in the trace
  bool ok = true;

  static uint64_t HashBytes(const char* data, size_t size) {
    return std::hash<std::string_view>{}(std::string_view(data, size));
  }

  uint64_t Kind(const Object* kind_obj) {
    auto it = kinds.find(kind_obj);
    if (it != kinds.end()) return it->second;
    String name = kind_name(kind_obj).cast<String>();
    return kinds[kind_obj] = Mix(1, HashBytes(name.data(), name.size()));
  }

  uint64_t Value(const Any& v) {
    int32_t ti = v.type_index();
    switch (ti) {
      case TypeIndex::kTVMFFINone:
        return 2;
      case TypeIndex::kTVMFFIInt:
        return Mix(3, static_cast<uint64_t>(v.cast<int64_t>()));
      case TypeIndex::kTVMFFIBool:
        return Mix(4, v.cast<bool>());
      case TypeIndex::kTVMFFIFloat: {
        double d = v.cast<double>();
        uint64_t bits;
        std::memcpy(&bits, &d, sizeof(bits));
        return Mix(5, bits);
      }
      case TypeIndex::kTVMFFISmallStr:
      case TypeIndex::kTVMFFIStr: {
        String s = v.cast<String>();
        return Mix(6, HashBytes(s.data(), s.size()));
      }
      default:
        break;
    }
    const Object* obj = v.as<Object>();
    if (obj == nullptr) {  // another POD (a dtype, a device...): not in schedule traces
      ok = false;
      return Mix(7, ti);
    }
    auto it = vars.find(obj);
    if (it != vars.end()) return Mix(8, it->second);
    if (ti == TypeIndex::kTVMFFIArray) {
      const ArrayObj* arr = v.as<ArrayObj>();
      uint64_t h = Mix(9, arr->size());
      for (const Any& e : *arr) h = Mix(h, Value(e));
      return h;
    }
    if (ti == int_imm) return Mix(10, static_cast<uint64_t>(int_value(obj).cast<int64_t>()));
    if (ti == float_imm) return Mix(11, Value(float_value(obj)));
    // An expression over sampled variables, an index map...: no reading of its own; the trace
    // stays a structure of its own (tokenized from its text, correct, only not shared).
    ok = false;
    return Mix(12, reinterpret_cast<uintptr_t>(obj));
  }

  // A decision as integers: 0, value for a scalar; width, values for a list. False if neither.
  bool Decision(const Any& d, std::vector<int64_t>* out) {
    auto scalar = [&](const Any& x, int64_t* val) {
      if (x.type_index() == TypeIndex::kTVMFFIInt) {
        *val = x.cast<int64_t>();
        return true;
      }
      const Object* obj = x.as<Object>();
      if (obj != nullptr && x.type_index() == int_imm) {
        *val = int_value(obj).cast<int64_t>();
        return true;
      }
      return false;
    };
    int64_t val;
    if (scalar(d, &val)) {
      out->push_back(0);
      out->push_back(val);
      return true;
    }
    if (d.type_index() != TypeIndex::kTVMFFIArray) return false;
    const ArrayObj* arr = d.as<ArrayObj>();
    if (arr->size() == 0) return false;
    out->push_back(static_cast<int64_t>(arr->size()));
    for (const Any& e : *arr) {
      if (!scalar(e, &val)) return false;
      out->push_back(val);
    }
    return true;
  }

  // Key of one trace (0 where it cannot be read: the caller prints that one); its decision
  // records are appended to `decs`.
  uint64_t Read(const Any& trace, std::vector<int64_t>* decs) {
    ok = true;
    vars.clear();
    const Object* tr = trace.as<Object>();
    if (tr == nullptr) return 0;
    Any insts_any = insts(tr), dec_any = decisions(tr);
    const ArrayObj* list = insts_any.as<ArrayObj>();
    const MapObj* dmap = dec_any.as<MapObj>();
    if (list == nullptr) return 0;
    size_t start = decs->size();
    uint64_t h = Mix(13, list->size()), next_var = 0;
    for (const Any& inst : *list) {
      const Object* ip = inst.as<Object>();
      Any kind_any = kind(ip), in_any = inputs(ip), at_any = attrs(ip), out_any = outputs(ip);
      h = Mix(h, Kind(kind_any.as<Object>()));
      h = Mix(h, Value(in_any));
      h = Mix(h, Value(at_any));
      if (dmap != nullptr) {
        auto it = dmap->find(inst);
        if (it != dmap->end()) {
          size_t at = decs->size();
          if (!Decision((*it).second, decs)) {
            ok = false;
            break;
          }
          h = Mix(h, 14 + static_cast<uint64_t>((*decs)[at]));  // the decision's shape
        }
      }
      const ArrayObj* outs = out_any.as<ArrayObj>();
      h = Mix(h, outs == nullptr ? 0 : outs->size());
      if (outs != nullptr) {
        for (const Any& o : *outs) {
          const Object* op = o.as<Object>();
          if (op != nullptr) vars[op] = next_var;
          next_var += 1;
        }
      }
    }
    if (!ok) {
      decs->resize(start);
      return 0;
    }
    return h == 0 ? 1 : h;
  }
};

}  // namespace

// traces: Array of s_tir.Trace -> [keys (uint64 per trace), decisions (int64 records, all traces
// in order), offsets (int64, n + 1: trace i's records are decisions[offsets[i]:offsets[i+1]])], as
// bytes for numpy.frombuffer.
tvm::ffi::Array<tvm::ffi::Any> read_traces(tvm::ffi::Array<tvm::ffi::Any> traces) {
  static Reader reader;
  std::vector<uint64_t> keys;
  std::vector<int64_t> decs, offsets{0};
  keys.reserve(traces.size());
  offsets.reserve(traces.size() + 1);
  for (const tvm::ffi::Any& t : traces) {
    keys.push_back(reader.Read(t, &decs));
    offsets.push_back(static_cast<int64_t>(decs.size()));
  }
  auto bytes = [](const void* data, size_t n) {
    return tvm::ffi::Bytes(static_cast<const char*>(data), n);
  };
  return {bytes(keys.data(), keys.size() * 8), bytes(decs.data(), decs.size() * 8),
          bytes(offsets.data(), offsets.size() * 8)};
}
