/* startup.c: reset and fault handling for the MPS2 boards QEMU emulates: the Cortex-M4
 * (mps2-an386) and the Cortex-M3 (mps2-an385, no FPU: float is soft-float library code).
 *
 * The vector table's first word is the initial stack pointer, the second the reset
 * handler. Reset turns on the FPU where the build uses one (before any float instruction
 * can run), copies .data
 * from flash to RAM, zeroes .bss, opens newlib's semihosting stdio (librdimon) and exits
 * through semihosting with main's status, so QEMU terminates with it. A fault exits with
 * a run-time error instead of spinning, so a broken build fails fast under QEMU.
 * It also starts the board's first CMSDK timer free-running (board_ticks), which the
 * example reads to count instructions under `qemu-system-arm -icount`.
 */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];
extern int main(void);
extern void initialise_monitor_handles(void);

void reset_handler(void);
void fault_handler(void);

typedef void (*handler)(void);

/* 16 core exceptions of ARMv7-M; the board's interrupts are not used. */
typedef struct {
    uint32_t *stack_top;
    handler core[15];
} vector_table;

__attribute__((section(".isr_vector"), used)) const vector_table vectors = {
    _estack,
    {
        reset_handler,  /* reset */
        fault_handler,  /* NMI */
        fault_handler,  /* HardFault */
        fault_handler,  /* MemManage */
        fault_handler,  /* BusFault */
        fault_handler,  /* UsageFault */
        0, 0, 0, 0,     /* reserved */
        fault_handler,  /* SVCall */
        fault_handler,  /* DebugMonitor */
        0,              /* reserved */
        fault_handler,  /* PendSV */
        fault_handler,  /* SysTick */
    },
};

/* newlib's exit() runs __libc_fini_array, which calls _fini; crti.o (dropped with
 * -nostartfiles) would define it. C code has no destructors to run. */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}

#if defined(__ARM_FP)
#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#endif
/* CMSDK APB timer 0 of the MPS2 boards: control, current value, reload. */
#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)

uint32_t board_ticks(void);

/* The timer counts down from 2^32 - 1 at the board's 25 MHz peripheral clock. */
uint32_t board_ticks(void) { return TIMER0_VALUE; }

void reset_handler(void)
{
    uint32_t *src = _sidata;
    uint32_t *dst = _sdata;
#if defined(__ARM_FP)
    CPACR |= 0xFu << 20; /* full access to coprocessors 10 and 11: the FPU */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    while (dst < _edata) {
        *dst++ = *src++;
    }
    for (dst = _sbss; dst < _ebss; ++dst) {
        *dst = 0;
    }
    TIMER0_RELOAD = 0xFFFFFFFFu;
    TIMER0_VALUE = 0xFFFFFFFFu;
    TIMER0_CTRL = 1u; /* enable, no interrupt */
    initialise_monitor_handles();
    exit(main());
}

void fault_handler(void)
{
    /* Semihosting SYS_EXIT (0x18) with ADP_Stopped_RunTimeError (0x20023): QEMU exits 1. */
    __asm__ volatile("mov r0, #0x18\n\t"
                     "ldr r1, =0x20023\n\t"
                     "bkpt 0xab" ::: "r0", "r1", "memory");
    for (;;) {
    }
}
