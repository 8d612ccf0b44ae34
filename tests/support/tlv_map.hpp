// Test support: a TLV record visitor that keeps each record of a ZMQ TLV
// payload as key -> value text (key names from the shared key table, the
// number when the table has no name), for tests that compare fields.
#pragma once

#include <weir/exporters/tlv.hpp>
#include <weir/exporters/zmq_decoder.hpp>

#include <map>
#include <string>
#include <vector>

namespace weir::test {

/// Each record as key -> value text, via the shared key table.
struct MapVisitor final : exporters::TlvRecordVisitor {
    std::vector<std::map<std::string, std::string>> records;
    std::map<std::string, std::string> cur;
    void on_item(const exporters::tlv::Item& it) noexcept override
    {
        namespace tlv = exporters::tlv;
        std::string k = it.string_key ? std::string(it.key_str) : std::string(tlv::key_name(it.key));
        if (k.empty())
            k = std::to_string(it.key);
        if (it.is_unsigned()) cur[k] = std::to_string(it.u);
        else if (it.is_signed()) cur[k] = std::to_string(it.i);
        else if (it.type == tlv::Type::Float) cur[k] = std::to_string(it.f);
        else cur[k] = std::string(it.s);
    }
    void on_record_end() noexcept override
    {
        records.push_back(cur);
        cur.clear();
    }
};

} // namespace weir::test
