// The qcow2 create and amend option lists: what the descriptor declares without loading the code behind them

import type { OptionSpec } from "../../../core/options.ts";

/** The create options of qcow2, as `qemu-img create -f qcow2 -o help` lists them. */
export const QCOW2_CREATE_OPTIONS: readonly OptionSpec[] = [
  // In the order `qemu-img create` prints them in its Formatting line; an option with a
  // default is printed even when not given, as QEMU does.
  { name: "cluster_size", type: "size", help: "qcow2 cluster size", default: 65536 },
  { name: "extended_l2", type: "bool", help: "Extended L2 tables", default: false },
  {
    name: "preallocation",
    type: "enum",
    values: ["off", "metadata", "falloc", "full"],
    help: "Preallocation mode (allowed values: off, metadata, falloc, full)",
  },
  {
    name: "compression_type",
    type: "enum",
    values: ["zlib", "zstd"],
    help: "Compression method used for image cluster compression",
    default: "zlib",
  },
  { name: "size", type: "size", help: "Virtual disk size" },
  {
    name: "compat",
    type: "string",
    help: "Compatibility level (v2 [0.10] or v3 [1.1])",
  },
  { name: "backing_file", type: "string", help: "File name of a base image" },
  { name: "backing_fmt", type: "string", help: "Image format of the base image" },
  { name: "data_file", type: "string", help: "File name of an external data file" },
  {
    name: "data_file_raw",
    type: "bool",
    help: "The external data file must stay valid as a raw image",
  },
  {
    name: "encryption",
    type: "bool",
    help: "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)",
  },
  {
    name: "encrypt.format",
    type: "string",
    help: "Encrypt the image, format choices: 'aes', 'luks'",
  },
  {
    name: "encrypt.key-secret",
    type: "string",
    help: "ID of secret providing qcow AES key or LUKS passphrase",
  },
  { name: "encrypt.cipher-alg", type: "string", help: "Name of encryption cipher algorithm" },
  { name: "encrypt.cipher-mode", type: "string", help: "Name of encryption cipher mode" },
  { name: "encrypt.ivgen-alg", type: "string", help: "Name of IV generator algorithm" },
  {
    name: "encrypt.ivgen-hash-alg",
    type: "string",
    help: "Name of IV generator hash algorithm",
  },
  { name: "encrypt.hash-alg", type: "string", help: "Name of encryption hash algorithm" },
  { name: "encrypt.iter-time", type: "number", help: "Time to spend in PBKDF in milliseconds" },
  { name: "lazy_refcounts", type: "bool", help: "Postpone refcount updates", default: false },
  {
    name: "refcount_bits",
    type: "number",
    help: "Width of a reference count entry in bits",
    default: 16,
  },
];

/** The options `qemu-img amend -f qcow2 -o help` lists, with QEMU 7.2's help texts. */
export const QCOW2_AMEND_OPTIONS: readonly OptionSpec[] = [
  { name: "backing_file", type: "string", help: "File name of a base image" },
  { name: "backing_fmt", type: "string", help: "Image format of the base image" },
  { name: "compat", type: "string", help: "Compatibility level (v2 [0.10] or v3 [1.1])" },
  { name: "data_file", type: "string", help: "File name of an external data file" },
  {
    name: "data_file_raw",
    type: "bool",
    help: "The external data file must stay valid as a raw image",
  },
  { name: "encrypt.iter-time", type: "number", help: "Time to spend in PBKDF in milliseconds" },
  { name: "encrypt.keyslot", type: "number", help: "Select a single keyslot to modify explicitly" },
  {
    name: "encrypt.new-secret",
    type: "string",
    help: "New secret to set in the matching keyslots. Empty string to erase",
  },
  {
    name: "encrypt.old-secret",
    type: "string",
    help: "Select all keyslots that match this password",
  },
  {
    name: "encrypt.state",
    type: "string",
    help: "Select new state of affected keyslots (active/inactive)",
  },
  { name: "lazy_refcounts", type: "bool", help: "Postpone refcount updates" },
  { name: "refcount_bits", type: "number", help: "Width of a reference count entry in bits" },
  { name: "size", type: "size", help: "Virtual disk size" },
];
