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

// An object-reference field, read in place (no reference taken: the trace holds it).
class RefField {
 public:
  RefField(std::string_view type_key, const char* name) {
    const TVMFFIFieldInfo* info = refl::GetFieldInfo(type_key, name);
    if (info->field_static_type_index < TypeIndex::kTVMFFIStaticObjectBegin ||
        info->size != sizeof(ObjectRef)) {
      TVM_FFI_THROW(TypeError) << type_key << "." << name << " is not an object field";
    }
    offset_ = info->offset;
  }
  const Object* operator()(const Object* obj) const {
    return reinterpret_cast<const ObjectRef*>(reinterpret_cast<const char*>(obj) + offset_)->get();
  }

 private:
  int64_t offset_;
};

template <typename T>
const T* As(const Object* obj, int32_t type_index) {
  return obj != nullptr && obj->type_index() == type_index ? static_cast<const T*>(obj) : nullptr;
}

struct Reader {
  RefField insts{"s_tir.Trace", "insts"};
  RefField decisions{"s_tir.Trace", "decisions"};
  RefField kind{"s_tir.Instruction", "kind"};
  RefField inputs{"s_tir.Instruction", "inputs"};
  RefField attrs{"s_tir.Instruction", "attrs"};
  RefField outputs{"s_tir.Instruction", "outputs"};
  refl::FieldGetter kind_name{"s_tir.InstructionKind", "name"};
  refl::FieldGetter int_value{"ir.IntImm", "value"};
  refl::FieldGetter float_value{"ir.FloatImm", "value"};
  int32_t int_imm = TypeIndex("ir.IntImm");
  int32_t float_imm = TypeIndex("ir.FloatImm");
  int32_t trace_type = TypeIndex("s_tir.Trace");
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
    if (ti == TypeIndex::kTVMFFIArray) return Values(*v.as<ArrayObj>());
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
    if (tr == nullptr || tr->type_index() != trace_type) return 0;
    const ArrayObj* list = As<ArrayObj>(insts(tr), TypeIndex::kTVMFFIArray);
    const MapObj* dmap = As<MapObj>(decisions(tr), TypeIndex::kTVMFFIMap);
    if (list == nullptr) return 0;
    size_t start = decs->size();
    uint64_t h = Mix(13, list->size()), next_var = 0;
    for (const Any& inst : *list) {
      const Object* ip = inst.as<Object>();
      const ArrayObj* in = As<ArrayObj>(inputs(ip), TypeIndex::kTVMFFIArray);
      const ArrayObj* at = As<ArrayObj>(attrs(ip), TypeIndex::kTVMFFIArray);
      const ArrayObj* outs = As<ArrayObj>(outputs(ip), TypeIndex::kTVMFFIArray);
      if (in == nullptr || at == nullptr || outs == nullptr) return Fail(decs, start);
      h = Mix(h, Kind(kind(ip)));
      h = Mix(h, Values(*in));
      h = Mix(h, Values(*at));
      if (dmap != nullptr) {
        auto it = dmap->find(inst);
        if (it != dmap->end()) {
          size_t pos = decs->size();
          if (!Decision((*it).second, decs)) return Fail(decs, start);
          h = Mix(h, 14 + static_cast<uint64_t>((*decs)[pos]));  // the decision's shape
        }
      }
      h = Mix(h, outs->size());
      for (const Any& o : *outs) {
        const Object* op = o.as<Object>();
        if (op != nullptr) vars[op] = next_var;
        next_var += 1;
      }
    }
    if (!ok) return Fail(decs, start);
    return h == 0 ? 1 : h;
  }

  uint64_t Values(const ArrayObj& arr) {
    uint64_t h = Mix(9, arr.size());
    for (const Any& e : arr) h = Mix(h, Value(e));
    return h;
  }

  static uint64_t Fail(std::vector<int64_t>* decs, size_t start) {
    decs->resize(start);
    return 0;
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
