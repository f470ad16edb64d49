// RecordFields, the metadata records' writer: the text it writes, and that this text is the
// one a Poco::JSON::Object with insertion order gave for the same fields (the metadata log
// must not change when records stopped being Poco objects).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include "senningen/agent/analyzers/record_fields.h"

namespace senningen::agent {
namespace {

std::string poco_text(const Poco::JSON::Object& o) {
    std::ostringstream out;
    o.stringify(out);
    return out.str();
}

TEST(RecordFields, EmptyRecordIsAnEmptyObject) {
    RecordFields r;
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(r.json(), "{}");
    EXPECT_EQ(r.json(), "{}") << "reading twice closes the object once";
}

TEST(RecordFields, KeepsSetOrder) {
    RecordFields r;
    r.set("zeta", 1);
    r.set("alpha", "a");
    r.set("mid", true);
    EXPECT_FALSE(r.empty());
    EXPECT_EQ(r.json(), R"({"zeta":1,"alpha":"a","mid":true})");
}

TEST(RecordFields, EscapesStringsAsPocoDid) {
    // Control characters, DEL, a byte that is not UTF-8, a quote, a backslash, a slash, a NUL
    // and valid UTF-8 (é), in a value and in a key.
    const std::string nasty("a\x01\x7f\xff\"\\/\n\t\r\b\f\x0b\x07\x1f\xc3\xa9z\0end", 22);
    RecordFields r;
    r.set("s", nasty);
    r.set(nasty, false);
    EXPECT_EQ(r.json(), std::string("{\"s\":\"a\\u0001\x7f\xff\\\"\\\\/\\n\\t\\r\\b\\f\\u000B\\u0007"
                                    "\\u001F\xc3\xa9z\\u0000end\",\"a\\u0001\x7f\xff\\\"\\\\/\\n"
                                    "\\t\\r\\b\\f\\u000B\\u0007\\u001F\xc3\xa9z\\u0000end\":false}"));

    Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
    o.set("s", nasty);
    o.set(nasty, false);
    EXPECT_EQ(r.json(), poco_text(o));
}

TEST(RecordFields, IntegersAtTheirEdges) {
    RecordFields r;
    r.set("u64max", std::numeric_limits<std::uint64_t>::max());
    r.set("i64min", std::numeric_limits<std::int64_t>::min());
    r.set("i64max", std::numeric_limits<std::int64_t>::max());
    r.set("neg", -1);
    r.set("zero", 0u);
    r.set("u8", std::uint8_t{255});
    r.set("u16", std::uint16_t{65535});
    r.set("i16", std::int16_t{-32768});
    r.set("size", std::size_t{42});
    r.set("u32max", std::numeric_limits<std::uint32_t>::max());
    EXPECT_EQ(r.json(),
              R"({"u64max":18446744073709551615,"i64min":-9223372036854775808,)"
              R"("i64max":9223372036854775807,"neg":-1,"zero":0,"u8":255,"u16":65535,)"
              R"("i16":-32768,"size":42,"u32max":4294967295})");
}

TEST(RecordFields, DoublesAsPocoWroteThem) {
    const std::vector<double> values = {0.0,     -0.0,     1.0,        0.5,        1e-9,
                                        1.5e-5,  0.000123, 123456.789, 0.1 + 0.2,  3600.0,
                                        1.0 / 3, -2.25,    1e14 + 0.5, 1e15,       1e20,
                                        1e-15,   1e-16,    1234.5e-12, 86400.000001};
    for (double v : values) {
        RecordFields r;
        r.set("d", v);
        Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
        o.set("d", v == 0 ? 0.0 : v);  // Poco's own "-0" aside: no duration is -0
        EXPECT_EQ(r.json(), poco_text(o)) << v;
        // And it reads back as the same number.
        const auto back = Poco::JSON::Parser().parse(std::string(r.json()));
        EXPECT_EQ(back.extract<Poco::JSON::Object::Ptr>()->getValue<double>("d"), v == 0 ? 0 : v);
    }
    RecordFields r;
    r.set("nan", std::numeric_limits<double>::quiet_NaN());
    r.set("inf", std::numeric_limits<double>::infinity());
    EXPECT_EQ(r.json(), R"({"nan":null,"inf":null})");
}

TEST(RecordFields, NestedArraysAndObjects) {
    RecordFields r;
    r.set("first", "x");
    r.begin_array("list");
    r.begin_object();
    r.set("a", 1);
    r.set("names", std::vector<std::string>{"p", "q\"r"});
    r.end_object();
    r.begin_object();
    r.end_object();
    r.add("text");
    r.add(7u);
    r.add(-7);
    r.add(true);
    r.add(2.5);
    r.begin_array();
    r.end_array();
    r.end_array();
    r.set("empty", std::vector<std::string>{});
    r.begin_object("inner");
    r.set("k", std::string("v"));
    r.end_object();
    r.set_number_text("duration", "1.250000");
    r.set("last", false);
    EXPECT_EQ(r.json(),
              R"({"first":"x","list":[{"a":1,"names":["p","q\"r"]},{},"text",7,-7,true,2.5,[]],)"
              R"("empty":[],"inner":{"k":"v"},"duration":1.250000,"last":false})");

    // The same fields as a Poco object, as the analyzers built them.
    Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
    o.set("first", "x");
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    Poco::JSON::Object::Ptr item = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    item->set("a", 1);
    Poco::JSON::Array::Ptr names = new Poco::JSON::Array;
    names->add("p");
    names->add("q\"r");
    item->set("names", names);
    list->add(item);
    list->add(Poco::JSON::Object::Ptr(new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER)));
    list->add("text");
    list->add(7u);
    list->add(-7);
    list->add(true);
    list->add(2.5);
    list->add(Poco::JSON::Array::Ptr(new Poco::JSON::Array));
    o.set("list", list);
    o.set("empty", Poco::JSON::Array::Ptr(new Poco::JSON::Array));
    Poco::JSON::Object::Ptr inner = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    inner->set("k", std::string("v"));
    o.set("inner", inner);
    o.set("duration", 1.25);
    o.set("last", false);
    std::string expected = poco_text(o);
    // Poco writes 1.25 where the caller chose six decimals: the one intended difference.
    expected.replace(expected.find("1.25"), 4, "1.250000");
    EXPECT_EQ(r.json(), expected);
}

TEST(RecordFields, GrowsPastItsInlineArena) {
    // Longer than the inline arena and the first text reservation: the record moves to a
    // block of its own and stays whole.
    const std::string long_text(5000, 'x');
    RecordFields r;
    r.set("a", long_text);
    for (int i = 0; i < 10; ++i) {
        r.begin_array("n" + std::to_string(i));  // deeper than the reserved levels
        r.begin_array();
        r.begin_object();
        r.set("b", long_text);
        r.end_object();
        r.end_array();
        r.end_array();
    }
    const auto parsed = Poco::JSON::Parser().parse(std::string(r.json()));
    const auto o = parsed.extract<Poco::JSON::Object::Ptr>();
    EXPECT_EQ(o->getValue<std::string>("a"), long_text);
    EXPECT_EQ(o->getArray("n9")->getArray(0)->getObject(0)->getValue<std::string>("b"), long_text);
    EXPECT_EQ(o->size(), 11u);
}

}  // namespace
}  // namespace senningen::agent
