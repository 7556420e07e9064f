//! Simulated device memory: separate allocations in one flat, little-endian 64-bit address space.

/// Where the first allocation goes: well above 0, so a null or small pointer faults.
const FIRST_BASE: u64 = 0x1000_0000;
/// cuMemAlloc aligns allocations to 256 bytes; so do we, so alignment behaves as on a GPU.
const ALIGNMENT: u64 = 256;
/// Unmapped space left after every allocation, so running off the end of one faults instead of
/// quietly landing in the next.
const GAP: u64 = 64 * 1024;

struct Allocation {
    base: u64,
    bytes: Vec<u8>,
}

impl Allocation {
    /// The offset of `[addr, addr + len)` in this allocation, if it lies wholly inside.
    fn offset_of(&self, addr: u64, len: usize) -> Option<usize> {
        let offset = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        (offset.checked_add(len)? <= self.bytes.len()).then_some(offset)
    }
}

pub struct Memory {
    allocations: Vec<Allocation>,
    next_base: u64,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            allocations: Vec::new(),
            next_base: FIRST_BASE,
        }
    }
}

impl Memory {
    /// Allocates `len` zeroed bytes and returns their address.
    pub fn alloc(&mut self, len: usize) -> u64 {
        let base = self.next_base;
        self.next_base = (base + len as u64 + GAP).next_multiple_of(ALIGNMENT);
        self.allocations.push(Allocation {
            base,
            bytes: vec![0; len],
        });
        base
    }

    /// Host write; panics if any byte is outside every allocation.
    pub fn write(&mut self, addr: u64, data: &[u8]) {
        self.bytes_mut(addr, data.len())
            .unwrap_or_else(|fault| panic!("host write: {fault}"))
            .copy_from_slice(data);
    }

    /// Host read; panics if any byte is outside every allocation.
    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        self.bytes(addr, len)
            .unwrap_or_else(|fault| panic!("host read: {fault}"))
            .to_vec()
    }

    pub fn write_u32(&mut self, addr: u64, value: u32) {
        self.write(addr, &value.to_le_bytes());
    }

    pub fn read_u32(&self, addr: u64) -> u32 {
        u32::from_le_bytes(self.read(addr, 4).try_into().expect("read returns 4 bytes"))
    }

    pub fn write_u64(&mut self, addr: u64, value: u64) {
        self.write(addr, &value.to_le_bytes());
    }

    pub fn read_u64(&self, addr: u64) -> u64 {
        u64::from_le_bytes(self.read(addr, 8).try_into().expect("read returns 8 bytes"))
    }

    /// Kernel load: as the GPU requires, the access must also be aligned to its own size.
    pub(crate) fn load(&self, addr: u64, len: usize) -> Result<&[u8], String> {
        check_alignment(addr, len)?;
        self.bytes(addr, len)
    }

    /// Kernel store: as the GPU requires, the access must also be aligned to its own size.
    pub(crate) fn store(&mut self, addr: u64, data: &[u8]) -> Result<(), String> {
        check_alignment(addr, data.len())?;
        self.bytes_mut(addr, data.len())?.copy_from_slice(data);
        Ok(())
    }

    fn bytes(&self, addr: u64, len: usize) -> Result<&[u8], String> {
        let (index, offset) = self.locate(addr, len)?;
        Ok(&self.allocations[index].bytes[offset..offset + len])
    }

    fn bytes_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], String> {
        let (index, offset) = self.locate(addr, len)?;
        Ok(&mut self.allocations[index].bytes[offset..offset + len])
    }

    /// Which allocation holds `[addr, addr + len)`, and where in it.
    fn locate(&self, addr: u64, len: usize) -> Result<(usize, usize), String> {
        self.allocations
            .iter()
            .enumerate()
            .find_map(|(index, allocation)| Some((index, allocation.offset_of(addr, len)?)))
            .ok_or_else(|| self.describe_miss(addr, len))
    }

    /// Names the allocation just below a bad address: usually the one an index ran off.
    fn describe_miss(&self, addr: u64, len: usize) -> String {
        let below = self
            .allocations
            .iter()
            .filter(|allocation| allocation.base <= addr)
            .max_by_key(|allocation| allocation.base);
        match below {
            Some(allocation) => format!(
                "{len}-byte access at {addr:#x} is outside the {}-byte allocation at {:#x} \
                 (offset {})",
                allocation.bytes.len(),
                allocation.base,
                addr - allocation.base
            ),
            None => format!("{len}-byte access at {addr:#x} is below every allocation"),
        }
    }
}

fn check_alignment(addr: u64, len: usize) -> Result<(), String> {
    if addr.is_multiple_of(len as u64) {
        Ok(())
    } else {
        Err(format!("misaligned {len}-byte access at {addr:#x}"))
    }
}

impl crate::doubles::Global for Memory {
    fn load(&self, addr: u64, out: &mut [u8]) -> Result<(), String> {
        out.copy_from_slice(self.bytes(addr, out.len())?);
        Ok(())
    }

    fn store(&mut self, addr: u64, data: &[u8]) -> Result<(), String> {
        self.bytes_mut(addr, data.len())?.copy_from_slice(data);
        Ok(())
    }
}
