/* Symbols of the guest blobs in stubs.S (host-side view: byte ranges to copy). */
#ifndef KVMS_STUBS_H
#define KVMS_STUBS_H
extern const unsigned char kvms_kcode_start[], kvms_kcode_end[], kvms_kcode_iret[],
    kvms_kcode_hw_syscall[], kvms_kcode_vectors[];
extern const unsigned char kvms_uentry_start[], kvms_uentry_end[], kvms_uentry_probe[],
    kvms_uentry_from_site[];

/* Guest address of a symbol inside a blob copied to guest address `base`. */
#define STUB_GVA(base, blob_start, sym) ((base) + (unsigned long)((sym) - (blob_start)))
#endif
