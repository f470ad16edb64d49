// A string of the HTTP body of Zeek's http-get-download trace (CHANGES.bro-aux.txt).
rule golden_bro_aux_changes
{
    meta:
        category = "Test content"
        severity = 3
    strings:
        $s = "Fixing update-changes, which could pick the wrong control file."
    condition:
        $s
}
