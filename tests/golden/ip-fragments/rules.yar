rule fragmented_implant_marker
{
    meta:
        description = "Golden test: a marker that only a reassembled response body shows"
        severity = "high"
        category = "malware"
    strings:
        $marker = "FRAGMENTED-IMPLANT-MARKER"
    condition:
        $marker
}
