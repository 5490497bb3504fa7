package tlsconf

// WriteDual is writeDual for the tests of package tlsconf_test.
var WriteDual = writeDual
