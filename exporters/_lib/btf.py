"""The layout of a compiled object's types, read from its BTF: where each field of a map's key or value
lies, and where each global variable of .rodata (the options) and .bss (the overflow counters) lies.

The kernel code is the one place a key's layout is written; user space reads it from there instead of
repeating it. A layout flattens anonymous members, gives byte arrays and nested structs as bytes, and arrays
of numbers as tuples."""
from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from typing import Any

from . import libbpf

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
VAR, DATASEC, ENUM64 = 14, 15, 19
SIGNED = 1  # BTF_INT_SIGNED, in an INT's encoding bits
QUALIFIERS = {TYPEDEF, VOLATILE, CONST, RESTRICT, 18}  # 18: TYPE_TAG


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # bytes from the start
    size: int  # bytes
    kind: str  # "int" (signed), "uint", "bytes" (char arrays, nested structs), "array" (of uints)
    count: int = 1  # elements, for "array"

    def get(self, raw: bytes) -> Any:
        chunk = raw[self.offset:self.offset + self.size]
        if self.kind in ("int", "uint"):
            return int.from_bytes(chunk, "little", signed=self.kind == "int")
        if self.kind == "array":
            return struct.unpack(f"<{self.count}{_FORMATS[self.size // self.count]}", chunk)
        return chunk

    def put(self, buf: bytearray, value: Any) -> None:
        if self.kind in ("int", "uint"):
            buf[self.offset:self.offset + self.size] = int(value).to_bytes(self.size, "little", signed=self.kind == "int")
        else:
            raw = bytes(value)[:self.size]
            buf[self.offset:self.offset + len(raw)] = raw


_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass(frozen=True)
class Layout:
    """A struct (or a plain number: one field named ""). Fields by name."""
    name: str
    size: int
    fields: dict[str, Field]

    @property
    def scalar(self) -> bool:
        return list(self.fields) == [""]

    def get(self, raw: bytes, name: str) -> Any:
        """A field's value; a plain number is its own (only) field, whatever it is called."""
        return self.fields["" if self.scalar else name].get(raw)

    def pack(self, **values: Any) -> bytes:
        """The bytes of a value with these fields set and every other byte zero (padding included, so that
        equal keys hash equally in the kernel)."""
        buf = bytearray(self.size)
        for name, value in values.items():
            if name not in self.fields:
                raise KeyError(f"{self.name} has no field {name!r} (fields: {', '.join(self.fields)})")
            self.fields[name].put(buf, value)
        return bytes(buf)


class Types:
    """An object's BTF (libbpf's struct btf), asked for layouts by type id or by name."""

    def __init__(self, btf_ptr: int) -> None:
        self.btf = btf_ptr

    def resolve(self, type_id: int) -> tuple[str, int, int, int, int]:
        """The type behind typedefs and qualifiers."""
        t = libbpf.btf_type(self.btf, type_id)
        while t[1] in QUALIFIERS:
            t = libbpf.btf_type(self.btf, t[3])
        return t

    def size(self, type_id: int) -> int:
        name, kind, vlen, size, after = self.resolve(type_id)
        if kind == ARRAY:
            elem, _, count = (ctypes.c_uint32 * 3).from_address(after)
            return self.size(elem) * count
        if kind == PTR:
            return 8
        return size

    def _field(self, name: str, offset: int, type_id: int) -> list[Field]:
        tname, kind, vlen, size, after = self.resolve(type_id)
        if kind == INT:
            encoding = (ctypes.c_uint32.from_address(after).value >> 24) & 0xF
            return [Field(name, offset, size, "int" if encoding & SIGNED else "uint")]
        if kind in (ENUM, ENUM64, PTR):
            return [Field(name, offset, self.size(type_id), "uint")]
        if kind == ARRAY:
            elem, _, count = (ctypes.c_uint32 * 3).from_address(after)
            _, elem_kind, _, elem_size, _ = self.resolve(elem)
            if elem_kind == INT and elem_size > 1:
                return [Field(name, offset, elem_size * count, "array", count)]
            return [Field(name, offset, self.size(type_id), "bytes")]
        if kind in (STRUCT, UNION) and name == "":  # an anonymous member: its fields are the parent's
            return [Field(f.name, offset + f.offset, f.size, f.kind, f.count) for f in self.layout(type_id).fields.values()]
        return [Field(name, offset, self.size(type_id), "bytes")]

    def layout(self, type_id: int) -> Layout:
        name, kind, vlen, size, after = self.resolve(type_id)
        if kind not in (STRUCT, UNION):
            return Layout(name, self.size(type_id), {"": self._field("", 0, type_id)[0]})
        fields: dict[str, Field] = {}
        members = (ctypes.c_uint32 * (3 * vlen)).from_address(after)
        kflag = ctypes.c_uint32.from_address(after - 8).value >> 31  # then offsets carry bitfield sizes
        for i in range(vlen):
            name_off, member_type, offset = members[3 * i:3 * i + 3]
            bits = offset >> 24 if kflag else 0
            offset = offset & 0xFFFFFF if kflag else offset
            if bits or offset % 8:  # a bitfield: LMP reads none, so it is left out of the layout
                continue
            for f in self._field(libbpf.btf_name(self.btf, name_off), offset // 8, member_type):
                fields[f.name] = f
        return Layout(name, size, fields)

    def struct(self, name: str) -> Layout:
        type_id = libbpf.btf_find(self.btf, name, STRUCT)
        if type_id is None:
            raise KeyError(f"no struct {name} in the object's BTF")
        return self.layout(type_id)

    def section(self, name: str) -> dict[str, Field]:
        """The global variables of a data section (".rodata", ".bss"), by name: {} when it has none."""
        type_id = libbpf.btf_find(self.btf, name, DATASEC)
        if type_id is None:
            return {}
        _, _, vlen, _, after = libbpf.btf_type(self.btf, type_id)
        found = {}
        entries = (ctypes.c_uint32 * (3 * vlen)).from_address(after)
        for i in range(vlen):
            var_type, offset, _size = entries[3 * i:3 * i + 3]
            var_name, _, _, target, _ = libbpf.btf_type(self.btf, var_type)
            found[var_name] = self._field(var_name, offset, target)[0]
        return found
