// The fields of one metadata record (a dns, http, files, conn, ... line of the metadata log),
// as an analyzer or the engine builds them. Fields are written as they are set, in set
// order, by RapidJSON's streaming Writer (keys, strings, numbers and escaping are its work)
// into a buffer the object owns: no map, no variant per field, and no allocation at all for
// a record under 896 bytes (most are); a longer one moves to one heap block, doubled as
// needed.
//
// The one difference from building a Poco::JSON::Object: setting the same key twice writes
// it twice (Poco kept the first position with the last value). Set each key once.
//
// Strings are written as Poco 1.11 wrote them: '"' and '\\' escaped, control characters as
// \b \f \n \r \t or \u00XX, every other byte (0x7f, bytes of invalid UTF-8) passed through
// unchanged, '/' not escaped.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <rapidjson/allocators.h>
#include <rapidjson/writer.h>

namespace senningen::agent {

// An integer field: any integral type but bool and the character types (which Poco wrote as
// text; here they would be a silent number).
template <class T>
concept RecordInteger = std::integral<T> && !std::same_as<std::remove_cv_t<T>, bool> &&
                        !std::same_as<std::remove_cv_t<T>, char> &&
                        !std::same_as<std::remove_cv_t<T>, char8_t> &&
                        !std::same_as<std::remove_cv_t<T>, char16_t> &&
                        !std::same_as<std::remove_cv_t<T>, char32_t> &&
                        !std::same_as<std::remove_cv_t<T>, wchar_t>;

class RecordFields {
public:
    RecordFields();
    RecordFields(const RecordFields&) = delete;  // the writer points into the object
    RecordFields& operator=(const RecordFields&) = delete;

    // Keyed fields, in the object being built (the record, or a nested object).
    void set(std::string_view key, std::string_view value) {
        key_(key);
        text_(value);
    }
    void set(std::string_view key, const std::string& value) { set(key, std::string_view(value)); }
    void set(std::string_view key, const char* value) { set(key, std::string_view(value)); }
    void set(std::string_view key, bool value) {
        key_(key);
        writer_.Bool(value);
    }
    template <RecordInteger T>
    void set(std::string_view key, T value) {
        key_(key);
        add(value);
    }
    // Shortest text that reads back as VALUE, in plain decimal notation below 1e15 (as Poco
    // 1.11 wrote doubles: 0 is "0", 1.5e-05 is "0.000015"); NaN and infinity become null.
    void set(std::string_view key, double value) {
        key_(key);
        add(value);
    }
    // An array of strings.
    void set(std::string_view key, const std::vector<std::string>& values);
    // A number the caller formatted, e.g. seconds with a fixed count of decimals. NUMBER must
    // be a valid JSON number: it is written as it is.
    void set_number_text(std::string_view key, std::string_view number);

    // Nesting: begin_array(key) ... end_array() and begin_object(key) ... end_object() inside
    // an object; begin_object() / begin_array() without a key and add() inside an array.
    void begin_array(std::string_view key) {
        key_(key);
        writer_.StartArray();
    }
    void begin_array() { writer_.StartArray(); }
    void end_array() { writer_.EndArray(); }
    void begin_object(std::string_view key) {
        key_(key);
        writer_.StartObject();
    }
    void begin_object() { writer_.StartObject(); }
    void end_object() { writer_.EndObject(); }

    // Array elements.
    void add(std::string_view value) { text_(value); }
    void add(const std::string& value) { text_(value); }
    void add(const char* value) { text_(value); }
    void add(bool value) { writer_.Bool(value); }
    template <RecordInteger T>
    void add(T value) {
        if constexpr (std::is_signed_v<T>) {
            writer_.Int64(static_cast<std::int64_t>(value));
        } else {
            writer_.Uint64(static_cast<std::uint64_t>(value));
        }
    }
    void add(double value);

    // True until a field is set.
    bool empty() const { return !has_fields_; }

    // The finished record text, "{...}". The first call closes the record object (every
    // nested array and object must be ended by then); the text stays valid while the object
    // lives. Reading it does not change the fields, hence const.
    std::string_view json() const;

private:
    // The record's text: in the object first, in one heap block once it outgrows that. Not
    // RapidJSON's StringBuffer: its Writer reserves six bytes per byte of every string (the
    // worst case of escaping), so a 200-byte URI would already leave an inline buffer. Here
    // only what is written takes room (RapidJSON's default reservation does nothing).
    class Text {
    public:
        using Ch = char;
        Text() = default;
        Text(const Text&) = delete;  // the pointers point into the object
        Text& operator=(const Text&) = delete;
        void Put(char c) {
            if (end_ == limit_) grow();
            *end_++ = c;
        }
        void Flush() {}
        std::string_view view() const {
            return {begin_, static_cast<std::size_t>(end_ - begin_)};
        }

    private:
        void grow();
        static constexpr std::size_t kInline = 896;
        char inline_[kInline];
        std::unique_ptr<char[]> heap_;
        char* begin_ = inline_;
        char* end_ = inline_;
        char* limit_ = inline_ + kInline;
    };

    // The writer's stack of nesting levels lives in a small arena of the object too.
    using Pool = rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>;
    using Writer = rapidjson::Writer<Text, rapidjson::UTF8<>, rapidjson::UTF8<>, Pool>;
    static constexpr std::size_t kLevelDepth = 4;  // levels reserved up front (16 bytes each)
    static constexpr std::size_t kArenaBytes = 256;  // the pool's header, then 4 to 8 levels
    static constexpr std::size_t kOverflowChunk = 512;  // deeper nesting

    void key_(std::string_view key) {
        has_fields_ = true;
        writer_.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    }
    void text_(std::string_view value) {
        writer_.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    }

    alignas(std::max_align_t) char arena_[kArenaBytes];
    Pool pool_;
    Text text_out_;
    mutable Writer writer_;
    mutable bool closed_ = false;
    bool has_fields_ = false;
};

}  // namespace senningen::agent
